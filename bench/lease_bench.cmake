# corral_lease_bench: micro-benchmarks of lease/lease_table (acquire/complete, waiters, contention).
add_executable(corral_lease_bench ${CMAKE_CURRENT_LIST_DIR}/lease_bench.cc)
target_link_libraries(corral_lease_bench PRIVATE corral_lease benchmark::benchmark_main)
