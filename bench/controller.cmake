# Controller benchmarks (included from bench/CMakeLists.txt).
#   bench_ctl [ROUND_TRIPS] [PAIR_SECONDS] [STATE_PARENT_DIR]
# starts bursard (from the same bin directory) itself.
find_package(Threads REQUIRED)
add_executable(bench_ctl ${CMAKE_CURRENT_LIST_DIR}/bench_ctl.c)
target_compile_definitions(bench_ctl PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(bench_ctl PRIVATE bursar_proto PkgConfig::ZMQ PkgConfig::CJSON
  Threads::Threads ${MATH_LIB})
if(TARGET bursard)
  add_dependencies(bench_ctl bursard)
endif()
