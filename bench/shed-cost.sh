#!/usr/bin/env bash
# Server CPU per shed answer against CPU per hit (issue 15, "a cheap shed path"), under many
# concurrent connections. Starts PostgreSQL (deploy/pg-local.sh, its own directory and ports) and
# one corral-server with two namespaces: `hot`, whose keys are loaded first and then only hit, and
# `cold`, whose query never finishes in time (pg_sleep), with `shedding.max_pending_loads` 16.
# Once 16 cold loads are stuck, every new cold key is shed with -BUSY at once. Then
# bench/shed-cost/client.py alternates a hit phase and a shed phase for ROUNDS rounds and compares
# the server's CPU per answer (medians).
#
# Usage: bench/shed-cost.sh [--rounds N] [--connections C] [--seconds S] [--server PATH] [OUT_DIR]
#   defaults: 5 rounds, 2000 connections, 8 s per phase, CORRAL_BUILD_DIR/cache-server/
#   corral-server (CORRAL_BUILD_DIR default build). Builds nothing. OUT_DIR (default a new
#   directory under /tmp) gets results.json, the client's output and corral.json.
# Exit status: 0 when every phase got the answers it is for, 1 otherwise, 2 on bad usage.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY_DIR=${ROOT_DIR}/deploy
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
SERVER_BIN=${BUILD_DIR}/cache-server/corral-server
ROUNDS=5
CONNECTIONS=2000
SECONDS_PER_PHASE=8
OUT_DIR=""
while (($#)); do
  case $1 in
    --rounds) ROUNDS=${2:-}; shift 2 ;;
    --connections) CONNECTIONS=${2:-}; shift 2 ;;
    --seconds) SECONDS_PER_PHASE=${2:-}; shift 2 ;;
    --server) SERVER_BIN=${2:-}; shift 2 ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "shed-cost.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) OUT_DIR=$1; shift ;;
  esac
done
for n in "${ROUNDS}" "${CONNECTIONS}" "${SECONDS_PER_PHASE}"; do
  [[ ${n} =~ ^[1-9][0-9]*$ ]] || { echo "shed-cost.sh: '${n}' is not a positive integer" >&2; exit 2; }
done
[[ -x ${SERVER_BIN} ]] || { echo "shed-cost.sh: no executable ${SERVER_BIN}" >&2; exit 2; }
[[ -n ${OUT_DIR} ]] || OUT_DIR=$(mktemp -d /tmp/corral-shed-cost.XXXXXX)
mkdir -p "${OUT_DIR}"

WORK_DIR=""
CORRAL_SERVER_PID=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  corral_server_stop
  if [[ -n ${WORK_DIR} ]]; then
    "${DEPLOY_DIR}/pg-local.sh" stop >/dev/null 2>&1 || true
    rm -rf "${WORK_DIR}"
  fi
  exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The client holds CONNECTIONS sockets, corral as many plus its own.
ulimit -n $((CONNECTIONS * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK_DIR=$(mktemp -d /tmp/corral-shed-cost-run.XXXXXX)
chmod 755 "${WORK_DIR}" # the postgres user must reach its data directory inside
CORRAL_PG_DIR=${WORK_DIR}/pg
CORRAL_PG_PORT=$(corral_free_port_range 3)
export CORRAL_PG_DIR CORRAL_PG_PORT
corral_log "PostgreSQL on ports ${CORRAL_PG_PORT}-$((CORRAL_PG_PORT + 2))"
"${DEPLOY_DIR}/pg-local.sh" start >/dev/null

RESP_PORT=$(corral_free_port)
HTTP_PORT=$(corral_free_port)
export RESP_PORT HTTP_PORT
cat >"${OUT_DIR}/corral.json" <<EOF
{
  "listen": { "resp": "127.0.0.1:${RESP_PORT}", "http": "127.0.0.1:${HTTP_PORT}" },
  "threads": 1,
  "postgres": {
    "primary": "$(corral_conninfo "${CORRAL_PG_PORT}")",
    "replicas": ["$(corral_conninfo $((CORRAL_PG_PORT + 1)))",
                 "$(corral_conninfo $((CORRAL_PG_PORT + 2)))"],
    "statement_timeout_ms": 600000
  },
  "shedding": { "max_pending_loads": 16, "max_clients": $((CONNECTIONS + 100)) },
  "namespaces": {
    "hot": { "query": "SELECT 'hot ' || \$1::text", "ttl_ms": 3600000 },
    "cold": { "query": "SELECT \$1::text FROM pg_sleep(3600)", "ttl_ms": 3600000 }
  },
  "shutdown": { "drain_grace_ms": 0, "timeout_ms": 2000 },
  "log_level": "warn"
}
EOF
corral_server_start "${SERVER_BIN}" "${OUT_DIR}/corral.json" "${WORK_DIR}/corral.log"
corral_log "$("${SERVER_BIN}" --version) pid ${CORRAL_SERVER_PID}, RESP ${RESP_PORT}"

# Load the hot keys one at a time (an MGET of many would be shed past 16 pending loads), then
# wedge 16 cold loads at the database.
for ((i = 0; i < 1000; i++)); do echo "GET hot:${i}"; done |
  redis-cli -p "${RESP_PORT}" | grep -c '^hot ' | grep -qx 1000 ||
  corral_die "the hot keys did not all load"
for i in $(seq 1 16); do redis-cli -p "${RESP_PORT}" GET "cold:wedge${i}" >/dev/null & done
stuck() {
  [[ $(curl -fsS "http://127.0.0.1:${HTTP_PORT}/metrics" |
    awk '/^corral_replica_inflight_loads\{|^corral_load_queue\{/ {s += $2} END {print s + 0}') \
    -ge 16 ]]
}
corral_wait_until 30 "16 cold loads to be pending" stuck || corral_die "the cold loads did not wedge"

python3 -B "${ROOT_DIR}/bench/shed-cost/client.py" --port "${RESP_PORT}" \
  --pid "${CORRAL_SERVER_PID}" --connections "${CONNECTIONS}" --seconds "${SECONDS_PER_PHASE}" \
  --rounds "${ROUNDS}" --json "${OUT_DIR}/results.json" | tee "${OUT_DIR}/client.txt"
status=${PIPESTATUS[0]}
corral_log "results in ${OUT_DIR}"
exit "${status}"
