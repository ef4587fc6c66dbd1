# bench/sim.cmake: replay throughput of bursar-sim (bench_sim).
add_executable(bench_sim ${CMAKE_CURRENT_LIST_DIR}/bench_sim.c)
target_link_libraries(bench_sim PRIVATE bursar_simcore)
# bench_ope: off-policy evaluation (IPS, SNIPS) on an export log, parsing
# included.
add_executable(bench_ope ${CMAKE_CURRENT_LIST_DIR}/bench_ope.c)
target_link_libraries(bench_ope PRIVATE bursar_simcore)
