# corral_store_bench: lease::Store Get and Set of 100-byte values on 1M keys, 1 and 2 threads.
add_executable(corral_store_bench ${CMAKE_CURRENT_LIST_DIR}/store_bench.cc)
target_link_libraries(corral_store_bench PRIVATE corral_lease benchmark::benchmark_main)
