# proto/ micro-benchmarks: pipelined GET parsing and bulk reply writing (included by
# bench/CMakeLists.txt, which has found Google Benchmark).
add_executable(corral_proto_bench ${CMAKE_CURRENT_LIST_DIR}/proto_bench.cc)
target_link_libraries(corral_proto_bench PRIVATE corral_proto benchmark::benchmark_main)
