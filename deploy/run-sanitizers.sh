# shellcheck shell=bash
# The sanitizer and fuzz phases of deploy/run-tests.sh (issue 11), sourced by it after the plain
# ctest phase, with the servers still running: uses its phase/failed functions, ROOT_DIR,
# CMAKE_ARGS, TEST_TIMEOUT and the CORRAL_TEST_* variables. Kept in its own file so that the
# phases can change without touching the main script.
#
#   build/ctest (ASan+UBSan): the whole suite but bench/ and ASAN_EXCLUDE (see below), leak
#     detection on; any report fails its test (the server exits non-zero, which the integration
#     harness checks).
#   build/ctest (TSan): the suites where threads meet (lease table, store, cache service, the
#     loader's batching) and the server under one small herd.
#   fuzz: each libFuzzer target replays its corpus and regressions, then runs for
#     CORRAL_FUZZ_SECONDS (default 20) over a scratch copy of its corpus.
# Build directories: build-asan, build-tsan, build-fuzz next to the main build directory.

SANITIZER_DIR=$(dirname "${BUILD_DIR}")
ASAN_BUILD_DIR=${SANITIZER_DIR}/build-asan
TSAN_BUILD_DIR=${SANITIZER_DIR}/build-tsan
FUZZ_BUILD_DIR=${SANITIZER_DIR}/build-fuzz
FUZZ_SECONDS=${CORRAL_FUZZ_SECONDS:-20}

# Sanitizer runtime options for every test binary and every corral-server the tests start.
# abort_on_error: a report kills the process with SIGABRT, which no test mistakes for success.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=${ROOT_DIR}/tests/sanitizer/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1"
export TSAN_OPTIONS="${TSAN_OPTIONS}:suppressions=${ROOT_DIR}/tests/sanitizer/tsan.supp"

# Without bench/: its micro-benchmarks are not tests and cost compile time on 2 cores; the one
# test it carries, herd_pg_test (corral-herd against corral and Redis), runs in the plain build,
# and herds through the server run here in readthrough, overload and robustness tests.
# Left out of the ASan run, to keep CI within its hour: the six longest tests under ASan (about
# 340 s of the phase's 650 s of test time, measured 2026-12-04), each a repetition of paths that
# shorter tests run under ASan too. Every one runs in the plain ctest phase. The CLI's every
# invalid field starts ~70 servers (config_test and config_fuzz check the parser under ASan); ten
# thousand WAL updates across cut connections or a killed node (the other WAL tests and
# pgoutput_fuzz decode the same messages); the replica-lag fuzz (the lag tests); ten thousand
# cold keys (the other overload tests); node-redis's near cache (the tracking tests).
ASAN_EXCLUDE='^integration\.ConfigCliTest\.EveryInvalidField'
ASAN_EXCLUDE+='|^integration\.WalInvalidationPgTest\.(ANodeKilledDuringTenThousand|TenThousandUpdates)'
ASAN_EXCLUDE+='|^integration\.ReplicaLagPgTest\.FuzzNoReadOlder'
ASAN_EXCLUDE+='|^integration\.OverloadPgTest\.TenThousandColdKeys'
ASAN_EXCLUDE+='|^integration\.ClientsPgTest\.NodeRedisNearCache'
phase "build (ASan+UBSan, ${ASAN_BUILD_DIR##*/})" 1500
if cmake -S "${ROOT_DIR}" -B "${ASAN_BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCORRAL_SANITIZE=address -DCORRAL_BUILD_BENCH=OFF "${CMAKE_ARGS[@]}" >/dev/null &&
  cmake --build "${ASAN_BUILD_DIR}" -j "$(nproc)"; then
  phase "ctest (ASan+UBSan)" 900
  ctest --test-dir "${ASAN_BUILD_DIR}" --output-on-failure -j 2 --timeout "${TEST_TIMEOUT}" \
    -E "${ASAN_EXCLUDE}" || failed "ctest (ASan+UBSan)" "${ASAN_BUILD_DIR}"
else
  failed "build (ASan+UBSan)"
fi

# TSan: only the binaries below are built; ctest lists the others as *_NOT_BUILT, so they are
# excluded by name. One herd through the real server: a cold key asked by a thousand clients.
# The Redis tier: its client and subscriber against real redis-servers, and three corral nodes
# racing fills against DELs and a lease holder that dies (the other tier tests are herds whose
# timing TSan's slowdown would break). Replica lag: DEL while replay is paused (the position
# thread and the fence). The WAL stream: every kind of change, and the tier's one reader.
TSAN_TARGETS=(
  lease_lease_table_test lease_store_test lease_admission_test lease_error_holdoff_test
  lease_load_limiter_test lease_position_fence_test lease_store_commands_test
  cache_service_test pgloader_batch_test pgloader_loader_test pgloader_watchdog_test
  integration_readthrough_pg_test tier_client_redis_test tier_subscriber_redis_test
  tier_cluster_redis_test
  integration_tier_pg_test integration_replica_lag_pg_test integration_string_commands_test
  integration_wal_invalidation_pg_test
)
TSAN_EXCLUDE='_NOT_BUILT$|^integration\.ReadThroughPgTest\.'
TSAN_EXCLUDE+='(TwoHundredKeys|NotFound|QueryError|Mget)'
TSAN_EXCLUDE+='|^integration\.TierPgTest\.(Three|ColdKeys|RedisKilled|HotKey|RedisCluster|L2Hit|RedisLink)'
TSAN_EXCLUDE+='|^integration\.ReplicaLagPgTest\.(Notify|WhileOne|Fuzz)'
TSAN_EXCLUDE+='|^integration\.WalInvalidationPgTest\.(TenThousand|ANodeKilled|KeyColumn|AnInvalidated|Fuzz)'
phase "build (TSan, ${TSAN_BUILD_DIR##*/})" 900
if cmake -S "${ROOT_DIR}" -B "${TSAN_BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCORRAL_SANITIZE=thread -DCORRAL_BUILD_BENCH=OFF "${CMAKE_ARGS[@]}" >/dev/null &&
  cmake --build "${TSAN_BUILD_DIR}" -j "$(nproc)" --target "${TSAN_TARGETS[@]}"; then
  phase "ctest (TSan)" 300
  ctest --test-dir "${TSAN_BUILD_DIR}" --output-on-failure -j 2 --timeout "${TEST_TIMEOUT}" \
    -E "${TSAN_EXCLUDE}" || failed "ctest (TSan)" "${TSAN_BUILD_DIR}"
else
  failed "build (TSan)"
fi

phase "build (fuzz targets, clang++-14, ${FUZZ_BUILD_DIR##*/})" 600
if cmake -S "${ROOT_DIR}" -B "${FUZZ_BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCORRAL_FUZZ=ON -DCORRAL_BUILD_TESTS=OFF \
  -DCORRAL_BUILD_BENCH=OFF "${CMAKE_ARGS[@]}" >/dev/null &&
  cmake --build "${FUZZ_BUILD_DIR}" -j "$(nproc)" --target corral-fuzz; then
  # Six targets (tests/fuzz/*_fuzz.cc) of FUZZ_SECONDS each, one more for start-up and the replay.
  phase "fuzz (corpus and regressions, then ${FUZZ_SECONDS}s per target)" $((FUZZ_SECONDS * 7 + 60))
  ctest --test-dir "${FUZZ_BUILD_DIR}" --output-on-failure -L fuzz || failed "fuzz replay"
  mapfile -t FUZZ_BINARIES < <(find "${FUZZ_BUILD_DIR}/tests/fuzz" -maxdepth 1 -type f \
    -name '*_fuzz' -perm -u+x | sort)
  CORRAL_FUZZ_ARTIFACTS=${FUZZ_BUILD_DIR}/fuzz-artifacts \
    "${ROOT_DIR}/tests/fuzz/run-fuzz.sh" -t "${FUZZ_SECONDS}" "${FUZZ_BINARIES[@]}" ||
    failed "fuzz (a crash; the input is in ${FUZZ_BUILD_DIR}/fuzz-artifacts)"
else
  failed "build (fuzz targets)"
fi
