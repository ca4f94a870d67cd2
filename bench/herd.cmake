# corral-herd: the thundering-herd load generator (bench/herd/). Drives corral and Redis over RESP
# (hiredis's reader on its own epoll loop) and reads pg_stat_statements through libpqxx, which is
# linked PRIVATE to this tool only. Included by bench/CMakeLists.txt.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HERD_HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(HERD_PQXX IMPORTED_TARGET libpqxx)
find_package(Boost 1.81 REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3.11 REQUIRED)

add_executable(corral-herd
  ${CMAKE_CURRENT_LIST_DIR}/herd/db_pool.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/driver.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/main.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/metrics_poll.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/options.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/readiness.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/referee.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/report.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/resp_loop.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/scenarios.cc
  ${CMAKE_CURRENT_LIST_DIR}/herd/stats.cc
)
target_include_directories(corral-herd PRIVATE ${CORRAL_ROOT})
target_link_libraries(corral-herd PRIVATE
  PkgConfig::HERD_HIREDIS Boost::program_options nlohmann_json::nlohmann_json Threads::Threads)
if(HERD_PQXX_FOUND)
  target_link_libraries(corral-herd PRIVATE PkgConfig::HERD_PQXX)
else()
  find_library(HERD_PQXX_LIBRARY pqxx REQUIRED)
  target_link_libraries(corral-herd PRIVATE ${HERD_PQXX_LIBRARY})
endif()
# libpqxx sits on libpq; pkg-config's libpqxx.pc does not always list it.
find_library(HERD_PQ_LIBRARY pq REQUIRED)
target_link_libraries(corral-herd PRIVATE ${HERD_PQ_LIBRARY})
