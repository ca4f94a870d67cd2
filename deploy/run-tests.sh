#!/usr/bin/env bash
# corral's test command: installs dependencies, builds, starts a local PostgreSQL primary with two
# replicas, a PgBouncer in front of each replica, a Redis and a Redis Cluster (3 masters, 3
# replicas) on free ports, runs every test with ctest, and stops the servers again.
#
# After the plain build and ctest, the container image (issue 20: deploy/image.sh builds it from
# the binaries ctest ran and smoke-tests it), then the checks from outside (issue 11), each a
# phase of its own: the suite built with ASan+UBSan (leak detection on; but for six long tests that
# repeat paths others cover, deploy/run-sanitizers.sh), the suites where
# threads meet built with TSan, and every libFuzzer target for a bounded time. Each phase's time is
# printed against its budget at the end; the whole run must stay under an hour on 2 cores.
#
# Usage: deploy/run-tests.sh [CTEST_ARGS...]     e.g. deploy/run-tests.sh -R lease
# Environment: CORRAL_BUILD_DIR (default build, relative to the repository root), CORRAL_CMAKE_ARGS
# (extra configure arguments), CORRAL_TEST_TIMEOUT (per-test seconds, default 300).
#   CORRAL_CI_QUICK=1: skip the container image, sanitizer and fuzz phases (quick local runs;
#   ignored when CI=true).
#   Also skipped when CTEST_ARGS are given (a subset run), unless CORRAL_CI_FULL=1.
#   CORRAL_FUZZ_SECONDS: how long each fuzz target runs (default 20).
#   CORRAL_CI_WARN_S / CORRAL_CI_MAX_S: total run time that prints a warning (default 3000) and
#   that fails the run (default 3600).
# Exit status: non-zero if any phase failed (every phase still runs), or the run took longer
# than CORRAL_CI_MAX_S.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "${DEPLOY_DIR}/.." && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
TEST_TIMEOUT=${CORRAL_TEST_TIMEOUT:-300}
read -r -a CMAKE_ARGS <<<"${CORRAL_CMAKE_ARGS:-}"

START=${SECONDS}
PHASE_NAME=""
PHASE_BUDGET=0
PHASE_START=${SECONDS}
PHASE_TIMES=()
FAILED_PHASES=()
WORK_DIR=""
WARN_TOTAL_S=${CORRAL_CI_WARN_S:-3000}
MAX_TOTAL_S=${CORRAL_CI_MAX_S:-3600}

# phase NAME [BUDGET_S]: ends the current phase (recording its duration against its budget) and
# announces the next one. A phase over its budget is flagged in the summary, not failed.
phase() {
  end_phase
  PHASE_NAME=$1
  PHASE_BUDGET=${2:-0}
  PHASE_START=${SECONDS}
  if ((PHASE_BUDGET > 0)); then
    printf '\n==> [%4ds] %s (budget %ds)\n' $((SECONDS - START)) "${PHASE_NAME}" "${PHASE_BUDGET}"
  else
    printf '\n==> [%4ds] %s\n' $((SECONDS - START)) "${PHASE_NAME}"
  fi
}

end_phase() {
  if [[ -n ${PHASE_NAME} ]]; then
    local took=$((SECONDS - PHASE_START)) budget="      " note=""
    if ((PHASE_BUDGET > 0)); then
      budget=$(printf '/%5ds' "${PHASE_BUDGET}")
      ((took <= PHASE_BUDGET)) || note="  OVER BUDGET"
    fi
    PHASE_TIMES+=("$(printf '%5ds%s  %s%s' "${took}" "${budget}" "${PHASE_NAME}" "${note}")")
  fi
  PHASE_NAME=""
}

# failed WHAT: remembers that a phase failed; the run goes on and exits non-zero at the end.
# failed PHASE [CTEST_BUILD_DIR]: with a build directory, the names of the tests that failed
# there (ctest's LastTestsFailed.log) go with the phase into the summary, the last lines CI shows.
failed() {
  local what=$1 log=${2:-}/Testing/Temporary/LastTestsFailed.log
  if (($# > 1)) && [[ -f ${log} ]]; then
    local names
    names=$(awk -F: 'NR <= 20 { sub(/^[^:]*:/, ""); print }' "${log}" | paste -sd ' ' -)
    [[ -z ${names} ]] || what+=": ${names}"
  fi
  FAILED_PHASES+=("${what}")
  printf '==> FAILED: %s\n' "${what}"
  (($# > 1)) && failure_details "$2"
}

# failure_details CTEST_BUILD_DIR: for the first three tests that failed there, the lines around
# each gtest failure in their output (ctest's LastTest.log), kept for the end of the run: CI shows
# only the last lines of the log, and the test's own output is far above them.
FAILURE_DETAILS=()
failure_details() {
  local dir=$1/Testing/Temporary name details
  [[ -f ${dir}/LastTestsFailed.log && -f ${dir}/LastTest.log ]] || return 0
  while IFS= read -r name; do
    details=$(awk -v test="${name}" '
      $0 ~ /^[0-9]+\/[0-9]+ Test: / { inside = (substr($0, index($0, ": ") + 2) == test) }
      inside && /<end of output>/ { inside = 0 }
      inside && (/: Failure$/ || /^\[  FAILED  \]/ || /ERROR: AddressSanitizer|runtime error:|ThreadSanitizer/) { left = 6 }
      inside && left > 0 && printed < 40 { print "      " substr($0, 1, 400); left--; printed++ }' "${dir}/LastTest.log")
    FAILURE_DETAILS+=("    --- ${name}" "${details:-      (no gtest failure lines; see the output above)}")
  done < <(awk 'NR <= 3 { sub(/^[^:]*:/, ""); print }' "${dir}/LastTestsFailed.log")
}

# Stops the servers and prints the phase timings, whatever happened before.
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n ${WORK_DIR} ]]; then
    if ((status != 0)); then
      show_server_logs
    fi
    phase "stop PostgreSQL, Redis and the Redis Cluster"
    # The bouncers first: they live in the cluster's directory, which pg-local.sh stop deletes.
    CORRAL_PG_DIR=${WORK_DIR}/pg "${DEPLOY_DIR}/pgbouncer-local.sh" stop || true
    CORRAL_PG_DIR=${WORK_DIR}/pg "${DEPLOY_DIR}/pg-local.sh" stop || true
    CORRAL_REDIS_DIR=${WORK_DIR}/redis "${DEPLOY_DIR}/redis-local.sh" stop || true
    CORRAL_REDIS_CLUSTER_DIR=${WORK_DIR}/redis-cluster "${DEPLOY_DIR}/redis-cluster-local.sh" stop ||
      true
    rm -rf "${WORK_DIR}"
  fi
  end_phase
  local total=$((SECONDS - START))
  printf '\n==> phase timings: seconds taken / budget (total %ds; ' "${total}"
  printf 'warn above %ds, fail above %ds)\n' "${WARN_TOTAL_S}" "${MAX_TOTAL_S}"
  printf '%s\n' "${PHASE_TIMES[@]}"
  if ((total > MAX_TOTAL_S)); then
    printf '==> FAILED: the run took %ds, over the limit of %ds (CORRAL_CI_MAX_S)\n' \
      "${total}" "${MAX_TOTAL_S}"
    ((status != 0)) || status=1
  elif ((total > WARN_TOTAL_S)); then
    printf '==> WARNING: the run took %ds, over the %ds budget (CORRAL_CI_WARN_S)\n' \
      "${total}" "${WARN_TOTAL_S}"
  fi
  if ((${#FAILED_PHASES[@]} > 0)); then
    printf '==> failed phases:\n'
    printf '    %s\n' "${FAILED_PHASES[@]}"
    ((${#FAILURE_DETAILS[@]} == 0)) || printf '==> why (the lines around each failure):\n'
    ((${#FAILURE_DETAILS[@]} == 0)) || printf '%s\n' "${FAILURE_DETAILS[@]}"
    ((status != 0)) || status=1
  fi
  printf '==> exit status %d\n' "${status}"
  exit "${status}"
}

# On failure, the servers' last log lines often say why.
# shellcheck disable=SC2317  # called from the EXIT trap
show_server_logs() {
  local log
  for log in "${WORK_DIR}"/pg/*/postgres.log "${WORK_DIR}"/pg/bouncer/*/pgbouncer.log \
    "${WORK_DIR}"/redis/redis.log "${WORK_DIR}"/redis-cluster/*/redis.log; do
    if [[ -f ${log} ]]; then
      echo "--- last lines of ${log}"
      tail -n 15 "${log}"
    fi
  done
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

phase "install dependencies"
"${DEPLOY_DIR}/install-deps.sh"

# node-redis and ioredis for tests/integration/clients_test.cc, as the lock file pins them.
phase "install the Node client packages (npm ci, tests/clients/node)" 120
command -v node >/dev/null || corral_die "node is not in PATH (Node.js 20 or newer runs tests/clients/node)"
(cd "${ROOT_DIR}/tests/clients/node" && npm ci --no-audit --no-fund --loglevel=error) ||
  failed "npm ci"

phase "check source (clang-format, module boundaries)" 60
"${DEPLOY_DIR}/check-source.sh" || failed "check source"

phase "configure (${BUILD_DIR})"
cmake -S "${ROOT_DIR}" -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${CMAKE_ARGS[@]}"

phase "build (-j$(nproc))"
cmake --build "${BUILD_DIR}" -j "$(nproc)"

phase "check Kubernetes manifests (kubectl kustomize deploy/k8s)"
"${DEPLOY_DIR}/k8s/check.sh" "${BUILD_DIR}/cache-server/corral-server"

phase "start PostgreSQL primary + 2 replicas"
WORK_DIR=$(mktemp -d /tmp/corral-test.XXXXXX)
chmod 755 "${WORK_DIR}" # the postgres user must reach its data directory inside
CORRAL_PG_DIR=${WORK_DIR}/pg
CORRAL_PG_PORT=$(corral_free_port_range 3)
export CORRAL_PG_DIR CORRAL_PG_PORT
"${DEPLOY_DIR}/pg-local.sh" start >/dev/null
eval "$("${DEPLOY_DIR}/pg-local.sh" env)"
"${DEPLOY_DIR}/pg-local.sh" status

phase "start PgBouncer (transaction mode) in front of each replica"
"${DEPLOY_DIR}/pgbouncer-local.sh" start >/dev/null
eval "$("${DEPLOY_DIR}/pgbouncer-local.sh" env)"
"${DEPLOY_DIR}/pgbouncer-local.sh" status

phase "start Redis"
CORRAL_REDIS_DIR=${WORK_DIR}/redis
CORRAL_REDIS_PORT=$(corral_free_port)
export CORRAL_REDIS_DIR CORRAL_REDIS_PORT
"${DEPLOY_DIR}/redis-local.sh" start >/dev/null

phase "start Redis Cluster (3 masters, 3 replicas)"
CORRAL_REDIS_CLUSTER_DIR=${WORK_DIR}/redis-cluster
CORRAL_REDIS_CLUSTER_PORT=$(corral_free_port_range 12) # 6 client ports, then 6 bus ports
export CORRAL_REDIS_CLUSTER_DIR CORRAL_REDIS_CLUSTER_PORT
# start prints what env prints; the assignment stops the run (set -e) if start fails.
cluster_env=$("${DEPLOY_DIR}/redis-cluster-local.sh" start)
eval "${cluster_env}"
"${DEPLOY_DIR}/redis-cluster-local.sh" status

# The contract with the tests: where the servers are, and how to stop and start PostgreSQL nodes
# ("$CORRAL_TEST_PG_LOCAL stop-node replica1"; it finds the cluster through CORRAL_PG_DIR), and
# the same for the Redis Cluster ("$CORRAL_TEST_REDIS_CLUSTER_LOCAL failover PORT"; through
# CORRAL_REDIS_CLUSTER_DIR). CORRAL_TEST_REDIS_CLUSTER_NODES: host:port,..., the masters first.
export CORRAL_TEST_PG_PRIMARY=${CORRAL_PG_PRIMARY}
export CORRAL_TEST_PG_REPLICAS=${CORRAL_PG_REPLICAS}
export CORRAL_TEST_PG_LOCAL=${DEPLOY_DIR}/pg-local.sh
export CORRAL_TEST_PG_BOUNCER_REPLICAS=${CORRAL_PG_BOUNCER_REPLICAS}
export CORRAL_TEST_REDIS_PORT=${CORRAL_REDIS_PORT}
export CORRAL_TEST_REDIS_CLUSTER_NODES=${CORRAL_REDIS_CLUSTER_NODES}
export CORRAL_TEST_REDIS_CLUSTER_LOCAL=${DEPLOY_DIR}/redis-cluster-local.sh
printf 'CORRAL_TEST_PG_PRIMARY=%s\nCORRAL_TEST_PG_REPLICAS=%s\nCORRAL_TEST_PG_LOCAL=%s\n' \
  "${CORRAL_TEST_PG_PRIMARY}" "${CORRAL_TEST_PG_REPLICAS}" "${CORRAL_TEST_PG_LOCAL}"
printf 'CORRAL_PG_DIR=%s\nCORRAL_PG_PORT=%s\nCORRAL_TEST_REDIS_PORT=%s\n' \
  "${CORRAL_PG_DIR}" "${CORRAL_PG_PORT}" "${CORRAL_TEST_REDIS_PORT}"
printf 'CORRAL_TEST_PG_BOUNCER_REPLICAS=%s\n' "${CORRAL_TEST_PG_BOUNCER_REPLICAS}"
printf 'CORRAL_TEST_REDIS_CLUSTER_NODES=%s\nCORRAL_REDIS_CLUSTER_DIR=%s\n' \
  "${CORRAL_TEST_REDIS_CLUSTER_NODES}" "${CORRAL_REDIS_CLUSTER_DIR}"

phase "ctest" 600
ctest --test-dir "${BUILD_DIR}" --output-on-failure -j 2 --timeout "${TEST_TIMEOUT}" "$@" ||
  failed "ctest" "${BUILD_DIR}"

# --- The container image (issue 20), then the sanitizer and fuzz phases (issue 11). CI runs them
# all; a quick local run may skip them.
RUN_EXTRA=1
if [[ ${CI:-} != true ]]; then
  if [[ ${CORRAL_CI_QUICK:-0} == 1 ]]; then
    RUN_EXTRA=0
    echo "CORRAL_CI_QUICK=1: skipping the container image, sanitizer and fuzz phases"
  elif (($# > 0)) && [[ ${CORRAL_CI_FULL:-0} != 1 ]]; then
    RUN_EXTRA=0
    echo "ctest arguments given: skipping the container image, sanitizer and fuzz phases" \
      "(CORRAL_CI_FULL=1 runs them)"
  fi
fi
if ((RUN_EXTRA)); then
  # deploy/Containerfile on a debootstrapped Debian 12 base, with the binaries ctest just ran
  # (nothing compiles twice), checked from the image's own root: packages, size, PING, /healthz.
  phase "container image (deploy/image.sh --from-build)" 240
  "${DEPLOY_DIR}/image.sh" --from-build "${BUILD_DIR}" || failed "container image"
  # shellcheck source=deploy/run-sanitizers.sh
  source "${DEPLOY_DIR}/run-sanitizers.sh"
fi
