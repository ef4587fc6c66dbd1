# bench/gateway.cmake: bench_http, the HTTP load generator of
# scripts/bench_gateway.sh (issue 11: bursar-gateway and Portkey's gateway
# against the mock provider). Only libc and bursar_base.
add_executable(bench_http ${CMAKE_CURRENT_LIST_DIR}/bench_http.c)
target_link_libraries(bench_http PRIVATE bursar_base)
