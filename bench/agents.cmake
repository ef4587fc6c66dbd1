# agents/: provider calls per second through the curl multi pool against
# the mock provider, and the cost of a durable (fsync'ed) spool append.
add_executable(bench_agent ${CMAKE_CURRENT_LIST_DIR}/bench_agent.c)
target_link_libraries(bench_agent PRIVATE bursar_worker)
add_dependencies(bench_agent bursar-mock-provider)

