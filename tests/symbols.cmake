# The nm test (test_symbols.sh): every static library the parts build
# (found from the build system, so a new library is checked without an
# edit here; the test utility libraries under tests/ are not), passed by
# $<TARGET_FILE:...>, and the client library's link closure.

# Static library targets defined in dir and its subdirectories.
function(bursar_static_libs dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  set(libs "")
  foreach(t ${targets})
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "STATIC_LIBRARY")
      list(APPEND libs ${t})
    endif()
  endforeach()
  get_property(subs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(s ${subs})
    bursar_static_libs(${s} sub)
    list(APPEND libs ${sub})
  endforeach()
  set(${out} ${libs} PARENT_SCOPE)
endfunction()

# Every target and library target links, transitively (what a program
# linking target gets), as a list.
function(bursar_link_closure target out)
  set(seen "")
  set(todo ${target})
  while(todo)
    list(POP_FRONT todo t)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" t "${t}")
    if(t IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${t})
    if(TARGET ${t})
      get_target_property(deps ${t} INTERFACE_LINK_LIBRARIES)
      if(deps)
        list(APPEND todo ${deps})
      endif()
    endif()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

set(bursar_sym_args "")
foreach(part ${BURSAR_PARTS})
  bursar_static_libs(${PROJECT_SOURCE_DIR}/${part} part_libs)
  foreach(lib ${part_libs})
    list(APPEND bursar_sym_args --lib "${lib}=$<TARGET_FILE:${lib}>")
  endforeach()
endforeach()
if(TARGET bursar_client)
  bursar_link_closure(bursar_client closure)
  string(REPLACE ";" "," closure "${closure}")
  list(APPEND bursar_sym_args --client-closure "${closure}"
    --client bursar_client --client bursar_proto --client bursar_base)
endif()
add_test(NAME test_symbols
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/test_symbols.sh
          --nm ${CMAKE_NM} --src ${PROJECT_SOURCE_DIR} ${bursar_sym_args})
set_tests_properties(test_symbols PROPERTIES TIMEOUT 60)
