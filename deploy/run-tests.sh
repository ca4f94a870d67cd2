#!/usr/bin/env bash
# corral's test command: installs dependencies, builds, starts a local PostgreSQL primary with two
# replicas, a PgBouncer in front of each replica and a Redis on free ports, runs every test with
# ctest, and stops the servers again.
#
# Usage: deploy/run-tests.sh [CTEST_ARGS...]     e.g. deploy/run-tests.sh -R lease
# Environment: CORRAL_BUILD_DIR (default build, relative to the repository root), CORRAL_CMAKE_ARGS
# (extra configure arguments), CORRAL_TEST_TIMEOUT (per-test seconds, default 300).
# Exit status: ctest's, or non-zero if a step before it failed.
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
PHASE_START=${SECONDS}
PHASE_TIMES=()
WORK_DIR=""

# phase NAME: ends the current phase (recording its duration) and announces the next one.
phase() {
  end_phase
  PHASE_NAME=$1
  PHASE_START=${SECONDS}
  printf '\n==> [%4ds] %s\n' $((SECONDS - START)) "${PHASE_NAME}"
}

end_phase() {
  if [[ -n ${PHASE_NAME} ]]; then
    PHASE_TIMES+=("$(printf '%5ds  %s' $((SECONDS - PHASE_START)) "${PHASE_NAME}")")
  fi
  PHASE_NAME=""
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
    phase "stop PostgreSQL and Redis"
    # The bouncers first: they live in the cluster's directory, which pg-local.sh stop deletes.
    CORRAL_PG_DIR=${WORK_DIR}/pg "${DEPLOY_DIR}/pgbouncer-local.sh" stop || true
    CORRAL_PG_DIR=${WORK_DIR}/pg "${DEPLOY_DIR}/pg-local.sh" stop || true
    CORRAL_REDIS_DIR=${WORK_DIR}/redis "${DEPLOY_DIR}/redis-local.sh" stop || true
    rm -rf "${WORK_DIR}"
  fi
  end_phase
  printf '\n==> phase timings (total %ds)\n' $((SECONDS - START))
  printf '%s\n' "${PHASE_TIMES[@]}"
  printf '==> exit status %d\n' "${status}"
  exit "${status}"
}

# On failure, the servers' last log lines often say why.
# shellcheck disable=SC2317  # called from the EXIT trap
show_server_logs() {
  local log
  for log in "${WORK_DIR}"/pg/*/postgres.log "${WORK_DIR}"/pg/bouncer/*/pgbouncer.log \
    "${WORK_DIR}"/redis/redis.log; do
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

# The contract with the tests: where the servers are, and how to stop and start PostgreSQL nodes
# ("$CORRAL_TEST_PG_LOCAL stop-node replica1"; it finds the cluster through CORRAL_PG_DIR).
export CORRAL_TEST_PG_PRIMARY=${CORRAL_PG_PRIMARY}
export CORRAL_TEST_PG_REPLICAS=${CORRAL_PG_REPLICAS}
export CORRAL_TEST_PG_LOCAL=${DEPLOY_DIR}/pg-local.sh
export CORRAL_TEST_PG_BOUNCER_REPLICAS=${CORRAL_PG_BOUNCER_REPLICAS}
export CORRAL_TEST_REDIS_PORT=${CORRAL_REDIS_PORT}
printf 'CORRAL_TEST_PG_PRIMARY=%s\nCORRAL_TEST_PG_REPLICAS=%s\nCORRAL_TEST_PG_LOCAL=%s\n' \
  "${CORRAL_TEST_PG_PRIMARY}" "${CORRAL_TEST_PG_REPLICAS}" "${CORRAL_TEST_PG_LOCAL}"
printf 'CORRAL_PG_DIR=%s\nCORRAL_PG_PORT=%s\nCORRAL_TEST_REDIS_PORT=%s\n' \
  "${CORRAL_PG_DIR}" "${CORRAL_PG_PORT}" "${CORRAL_TEST_REDIS_PORT}"
printf 'CORRAL_TEST_PG_BOUNCER_REPLICAS=%s\n' "${CORRAL_TEST_PG_BOUNCER_REPLICAS}"

phase "ctest"
status=0
ctest --test-dir "${BUILD_DIR}" --output-on-failure -j 2 --timeout "${TEST_TIMEOUT}" "$@" ||
  status=$?
exit "${status}"
