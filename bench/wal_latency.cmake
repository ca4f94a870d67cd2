# corral_wal_latency: how long after an UPDATE commits on the primary corral has dropped the cached
# key (issue 17: commit-to-invalidation latency, NOTIFY trigger or WAL). libpq for the writes,
# hiredis for corral. Run it with bench/wal-invalidation.sh. Included by bench/CMakeLists.txt.
find_package(PkgConfig REQUIRED)
pkg_check_modules(WAL_LATENCY_HIREDIS REQUIRED IMPORTED_TARGET hiredis)
find_library(WAL_LATENCY_PQ_LIBRARY pq REQUIRED)
find_path(WAL_LATENCY_PQ_INCLUDE libpq-fe.h PATH_SUFFIXES postgresql REQUIRED)
add_executable(corral_wal_latency ${CMAKE_CURRENT_LIST_DIR}/wal_latency.cc)
target_include_directories(corral_wal_latency PRIVATE ${WAL_LATENCY_PQ_INCLUDE})
target_link_libraries(corral_wal_latency PRIVATE PkgConfig::WAL_LATENCY_HIREDIS
                                                 ${WAL_LATENCY_PQ_LIBRARY})
