# configure_installed.cmake - run by `cmake --install` (dist/CMakeLists.txt,
# install(CODE)): writes bursar.pc and the systemd units from their *.in
# into GEN with the prefix of this install (CMAKE_INSTALL_PREFIX, which
# `--prefix` sets). In: SRC, GEN, PROJECT_VERSION and the directories
# BINDIR, LIBDIR, INCLUDEDIR, DOCDIR as GNUInstallDirs gives them
# (relative to the prefix, or absolute, kept as they are).
foreach(d BINDIR LIBDIR INCLUDEDIR DOCDIR)
  if(IS_ABSOLUTE "${${d}}")
    set(BURSAR_${d} "${${d}}")
    set(BURSAR_PC_${d} "${${d}}")
  else()
    set(BURSAR_${d} "${CMAKE_INSTALL_PREFIX}/${${d}}")
    set(BURSAR_PC_${d} "\${prefix}/${${d}}")
  endif()
endforeach()
set(BURSAR_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(f bursar.pc bursard.service bursar-gateway.service)
  configure_file("${SRC}/${f}.in" "${GEN}/${f}" @ONLY)
endforeach()
