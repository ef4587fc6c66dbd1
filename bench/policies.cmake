add_executable(bench_policy ${CMAKE_CURRENT_LIST_DIR}/bench_policy.c)
target_link_libraries(bench_policy PRIVATE bursar_policies)
