# bench/sim.cmake: replay throughput of bursar-sim (bench_sim).
add_executable(bench_sim ${CMAKE_CURRENT_LIST_DIR}/bench_sim.c)
target_link_libraries(bench_sim PRIVATE bursar_simcore)
