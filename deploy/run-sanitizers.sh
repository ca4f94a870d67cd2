# shellcheck shell=bash
# The sanitizer and fuzz phases of deploy/run-tests.sh (issue 11), sourced by it: uses its
# phase/failed functions, ROOT_DIR, CMAKE_ARGS, TEST_TIMEOUT and the CORRAL_TEST_* variables.
# Kept in its own file so that the phases can change without touching the main script.
#
#   build/ctest (ASan+UBSan): the whole suite but bench/ (see below), leak detection on; any
#     report fails its test (the server exits non-zero, which the integration harness checks).
#   build/ctest (TSan): the suites where threads meet (lease table, store, cache service, the
#     loader's batching) and the server under one small herd.
#   fuzz: each libFuzzer target replays its corpus and regressions, then runs for
#     CORRAL_FUZZ_SECONDS (default 30) over a scratch copy of its corpus.
# Build directories: build-asan, build-tsan, build-fuzz next to the main build directory.
#
# The three builds run in the background at idle CPU priority (SCHED_IDLE, else nice 19) while the
# tests before them run: the ASan build during the plain ctest and the image, the TSan and fuzz
# builds during the ASan ctest. Tests spend most of their time waiting on PostgreSQL, Redis and
# timers, and a task of normal priority preempts an idle one as soon as it wakes, so the builds
# take the CPU the tests leave and the run is shorter by about their length (on 2 cores: 3330 s
# with every build in the foreground, ~2500 s so). A build's log is kept next to its directory and
# printed when it fails.
#
#   sanitizer_builds_start: starts the ASan build; run-tests.sh calls it right after its build.
#   sanitizer_phases: the rest, in order; run-tests.sh calls it after the container image.

SANITIZER_DIR=$(dirname "${BUILD_DIR}")
ASAN_BUILD_DIR=${SANITIZER_DIR}/build-asan
TSAN_BUILD_DIR=${SANITIZER_DIR}/build-tsan
FUZZ_BUILD_DIR=${SANITIZER_DIR}/build-fuzz
FUZZ_SECONDS=${CORRAL_FUZZ_SECONDS:-30}

# Background builds by name: pid, start time, log file, budget; their durations for the summary.
declare -A BG_PID=() BG_START=() BG_LOG=() BG_BUDGET=()
BACKGROUND_TIMES=()

# background NAME DIR BUDGET_S FUNCTION: runs FUNCTION in a background subshell at idle CPU
# priority, its output in DIR.log.
background() {
  local name=$1 log=$2.log budget=$3 fn=$4
  BG_START[${name}]=${SECONDS}
  BG_LOG[${name}]=${log}
  BG_BUDGET[${name}]=${budget}
  (
    chrt --idle --pid 0 "${BASHPID}" 2>/dev/null || renice -n 19 -p "${BASHPID}" >/dev/null
    "${fn}"
  ) >"${log}" 2>&1 &
  BG_PID[${name}]=$!
  printf '==> [%4ds] %s: started in the background at idle priority (log: %s)\n' \
    $((SECONDS - START)) "${name}" "${log}"
}

# await NAME: a phase that waits for NAME's background build; its status is the build's. The
# summary lists the build's whole time, from start to end, against its budget.
await() {
  local name=$1 status=0
  phase "${name}: the rest of it (started in the background at $((BG_START[${name}] - START))s)"
  wait "${BG_PID[${name}]}" || status=$?
  local took=$((SECONDS - BG_START[${name}])) budget=${BG_BUDGET[${name}]} note=""
  ((took <= budget)) || note="  OVER BUDGET"
  BACKGROUND_TIMES+=("$(printf '%5ds/%5ds  %s (background, from %ds)%s' "${took}" "${budget}" \
    "${name}" $((BG_START[${name}] - START)) "${note}")")
  if ((status != 0)); then
    echo "--- the last lines of ${BG_LOG[${name}]}"
    tail -n 80 "${BG_LOG[${name}]}"
  else
    tail -n 1 "${BG_LOG[${name}]}"
  fi
  return "${status}"
}

# Without bench/: its micro-benchmarks are not tests and cost compile time on 2 cores; the one
# test it carries, herd_pg_test (corral-herd against corral and Redis), runs in the plain build,
# and herds through the server run here in readthrough, overload and robustness tests.
build_asan() {
  cmake -S "${ROOT_DIR}" -B "${ASAN_BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCORRAL_SANITIZE=address -DCORRAL_BUILD_BENCH=OFF "${CMAKE_ARGS[@]}" >/dev/null &&
    cmake --build "${ASAN_BUILD_DIR}" -j "$(nproc)"
}

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
build_tsan() {
  cmake -S "${ROOT_DIR}" -B "${TSAN_BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCORRAL_SANITIZE=thread -DCORRAL_BUILD_BENCH=OFF "${CMAKE_ARGS[@]}" >/dev/null &&
    cmake --build "${TSAN_BUILD_DIR}" -j "$(nproc)" --target "${TSAN_TARGETS[@]}"
}

build_fuzz() {
  cmake -S "${ROOT_DIR}" -B "${FUZZ_BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++-14 -DCORRAL_FUZZ=ON -DCORRAL_BUILD_TESTS=OFF \
    -DCORRAL_BUILD_BENCH=OFF "${CMAKE_ARGS[@]}" >/dev/null &&
    cmake --build "${FUZZ_BUILD_DIR}" -j "$(nproc)" --target corral-fuzz
}

sanitizer_builds_start() {
  background "build (ASan+UBSan, ${ASAN_BUILD_DIR##*/})" "${ASAN_BUILD_DIR}" 1500 build_asan
}

sanitizer_phases() {
  # Sanitizer runtime options for every test binary and every corral-server the tests start.
  # abort_on_error: a report kills the process with SIGABRT, which no test mistakes for success.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:check_initialization_order=1"
  export LSAN_OPTIONS="suppressions=${ROOT_DIR}/tests/sanitizer/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1"
  export TSAN_OPTIONS="${TSAN_OPTIONS}:suppressions=${ROOT_DIR}/tests/sanitizer/tsan.supp"

  local asan_built=0 tsan_built=0 fuzz_built=0
  await "build (ASan+UBSan, ${ASAN_BUILD_DIR##*/})" && asan_built=1
  background "build (TSan, ${TSAN_BUILD_DIR##*/})" "${TSAN_BUILD_DIR}" 900 build_tsan
  background "build (fuzz targets, clang++-14, ${FUZZ_BUILD_DIR##*/})" "${FUZZ_BUILD_DIR}" 900 \
    build_fuzz

  if ((asan_built)); then
    phase "ctest (ASan+UBSan)" 900
    ctest --test-dir "${ASAN_BUILD_DIR}" --output-on-failure -j 2 --timeout "${TEST_TIMEOUT}" ||
      failed "ctest (ASan+UBSan)" "${ASAN_BUILD_DIR}"
  else
    failed "build (ASan+UBSan)"
  fi

  await "build (TSan, ${TSAN_BUILD_DIR##*/})" && tsan_built=1
  if ((tsan_built)); then
    phase "ctest (TSan)" 300
    ctest --test-dir "${TSAN_BUILD_DIR}" --output-on-failure -j 2 --timeout "${TEST_TIMEOUT}" \
      -E "${TSAN_EXCLUDE}" || failed "ctest (TSan)" "${TSAN_BUILD_DIR}"
  else
    failed "build (TSan)"
  fi

  await "build (fuzz targets, clang++-14, ${FUZZ_BUILD_DIR##*/})" && fuzz_built=1
  if ((fuzz_built)); then
    # Six targets (tests/fuzz/*_fuzz.cc) of FUZZ_SECONDS each, one more for start-up and replay.
    phase "fuzz (corpus and regressions, then ${FUZZ_SECONDS}s per target)" $((FUZZ_SECONDS * 7 + 60))
    ctest --test-dir "${FUZZ_BUILD_DIR}" --output-on-failure -L fuzz || failed "fuzz replay"
    local -a fuzz_binaries
    mapfile -t fuzz_binaries < <(find "${FUZZ_BUILD_DIR}/tests/fuzz" -maxdepth 1 -type f \
      -name '*_fuzz' -perm -u+x | sort)
    CORRAL_FUZZ_ARTIFACTS=${FUZZ_BUILD_DIR}/fuzz-artifacts \
      "${ROOT_DIR}/tests/fuzz/run-fuzz.sh" -t "${FUZZ_SECONDS}" "${fuzz_binaries[@]}" ||
      failed "fuzz (a crash; the input is in ${FUZZ_BUILD_DIR}/fuzz-artifacts)"
  else
    failed "build (fuzz targets)"
  fi
}
