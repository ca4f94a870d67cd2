# corral_hitratio: replays synthetic traces through lease::Store's eviction policies in-process
# and, given --redis, through redis-server (allkeys-lru, allkeys-lfu) over RESP; prints hit ratios
# next to the static optimum. Run it with bench/hitratio.sh. Included by bench/CMakeLists.txt.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HITRATIO_HIREDIS REQUIRED IMPORTED_TARGET hiredis)
add_executable(corral_hitratio ${CMAKE_CURRENT_LIST_DIR}/hitratio.cc)
target_include_directories(corral_hitratio PRIVATE ${CORRAL_ROOT})
target_link_libraries(corral_hitratio PRIVATE corral_lease PkgConfig::HITRATIO_HIREDIS)
