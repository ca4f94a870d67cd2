#!/usr/bin/env bash
# The soak (issue 11): mixed traffic against one corral-server for 30 minutes while a replica is
# SIGKILLed and restarted every few minutes; RSS, open fds, threads and p99 sampled each minute;
# after the warm-up the run fails if any of them keeps rising, or on any error.
#
# Usage: bench/soak.sh [--minutes N] [--warmup-minutes N] [--server PATH] [--kill-every MIN]
#                      [--rate-scale X] [--seed N] [OUT_DIR]
# (defaults: 30 minutes, 10 of warm-up, a kill every 4 minutes, rate scale 1; OUT_DIR default: a
# new directory under /tmp.) Quick mode for development: --minutes 3 --warmup-minutes 1.
# --server: the corral-server to soak; default /tmp/soak-bin/corral-server if it exists, else
# CORRAL_BUILD_DIR/cache-server/corral-server (CORRAL_BUILD_DIR default build). Nothing is built.
# Writes OUT_DIR/soak.md (the per-minute table and the verdict), soak.json (every minute's numbers,
# corral's /v1/stats, the verdict), events.log (kills, restarts, error details), corral.json (the
# config), version.txt and diag/ (corral's and PostgreSQL's logs, corral's /metrics at the end).
# Needs what deploy/install-deps.sh installs and python3 (standard library only).
# Environment: CORRAL_SOAK_DRIVER_ARGS, more arguments for bench/soak/driver.py (its --help lists
# them), e.g. '--herd-size 500' or, to try the script out in seconds, '--minute-seconds 10'.
# CORRAL_SOAK_LOG_LEVEL: corral's log_level (default info); debug logs every invalidation, fence
# check and fill (diag/corral.log), to trace an outdated answer back to its fill.
#
# What it does: starts PostgreSQL (primary + 2 streaming replicas, deploy/pg-local.sh, in its own
# directory on free ports), adds an `items` table (200 000 rows for misses, 10 000 more for herds,
# each read by one herd) with corral's NOTIFY trigger next to the seeded `users` table, starts one
# corral-server (namespaces `user`, TTL 60 s, and `item`, TTL 60 s, no stale window; a 1 MiB
# memory bound, corral's smallest, which the miss traffic keeps full, so that the store evicts all
# the time and reaches its size in the first minute) and runs bench/soak/driver.py, which makes the
# traffic, kills and restarts the replicas and samples the server; bench/soak/report.py then
# writes the table and applies the rule (bench/soak/README.md).
#
# Exit status: 0 if the soak is flat and error-free, 1 if it fails the rule, 2 on bad usage.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY_DIR=${ROOT_DIR}/deploy
SOAK_DIR=${ROOT_DIR}/bench/soak
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
SERVER_BIN=""
MINUTES=30
WARMUP=10
KILL_EVERY=4
RATE_SCALE=1
SEED=1
OUT_DIR=""

# shellcheck disable=SC2016  # $1 is the queries' parameter, not the shell's
USER_QUERY='SELECT row_to_json(u)::text FROM users u WHERE u.id = $1::bigint'
# shellcheck disable=SC2016
ITEM_QUERY='SELECT row_to_json(i)::text FROM items i WHERE i.id = $1::bigint'

WORK_DIR=""

usage() {
  echo "usage: ${0##*/} [--minutes N] [--warmup-minutes N] [--server PATH] [--kill-every MIN]" \
    "[--rate-scale X] [--seed N] [OUT_DIR]" >&2
  exit 2
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n ${WORK_DIR} ]]; then
    local rc=0
    if [[ -n ${CORRAL_SERVER_PID} ]]; then
      kill -TERM "${CORRAL_SERVER_PID}" 2>/dev/null || true
      if ! corral_wait_until 20 "corral-server to exit after SIGTERM" _corral_server_gone; then
        kill -KILL "${CORRAL_SERVER_PID}" 2>/dev/null || true
      fi
      wait "${CORRAL_SERVER_PID}" 2>/dev/null || rc=$?
      if ((rc != 0)); then
        corral_log "corral-server exited ${rc} after SIGTERM"
        ((status != 0)) || status=1
      fi
    fi
    mkdir -p "${OUT_DIR}/diag"
    cp "${WORK_DIR}/corral.log" "${OUT_DIR}/diag/" 2>/dev/null || true
    local node
    for node in primary replica1 replica2; do
      cp "${WORK_DIR}/pg/${node}/postgres.log" "${OUT_DIR}/diag/postgres-${node}.log" 2>/dev/null ||
        true
    done
    "${DEPLOY_DIR}/pg-local.sh" stop >/dev/null 2>&1 || true
    rm -rf "${WORK_DIR}"
  fi
  exit "${status}"
}

parse_args() {
  while (($# > 0)); do
    case "$1" in
      --minutes | --warmup-minutes | --kill-every | --seed)
        (($# >= 2)) || usage
        [[ $2 =~ ^[0-9]+$ ]] || corral_die "$1: expected a whole number, got '$2'"
        case "$1" in
          --minutes) MINUTES=$2 ;;
          --warmup-minutes) WARMUP=$2 ;;
          --kill-every) KILL_EVERY=$2 ;;
          --seed) SEED=$2 ;;
        esac
        shift 2
        ;;
      --rate-scale)
        (($# >= 2)) || usage
        [[ $2 =~ ^[0-9]+(\.[0-9]+)?$ ]] || corral_die "$1: expected a number, got '$2'"
        RATE_SCALE=$2
        shift 2
        ;;
      --server)
        (($# >= 2)) || usage
        SERVER_BIN=$2
        shift 2
        ;;
      -h | --help) usage ;;
      -*) corral_die "unknown option '$1'" ;;
      *)
        [[ -z ${OUT_DIR} ]] || usage
        OUT_DIR=$1
        shift
        ;;
    esac
  done
  ((MINUTES >= 2 && WARMUP < MINUTES)) ||
    corral_die "need --minutes >= 2 and --warmup-minutes < --minutes"
  if [[ -z ${SERVER_BIN} ]]; then
    SERVER_BIN=/tmp/soak-bin/corral-server
    [[ -x ${SERVER_BIN} ]] || SERVER_BIN=${BUILD_DIR}/cache-server/corral-server
  fi
  [[ -x ${SERVER_BIN} ]] || corral_die "no corral-server at ${SERVER_BIN} (--server PATH)"
  OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/corral-soak.XXXXXX)}
  [[ ${OUT_DIR} == /* ]] || OUT_DIR=${PWD}/${OUT_DIR}
}

json_string() {
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"
}

# The items table: ids 1..200000 for the miss traffic, 10000001..10010000 one per herd; the same
# NOTIFY trigger as users (deploy/sql/invalidate.sql), for namespace item.
create_items() {
  "${CORRAL_PG_BIN:-/usr/lib/postgresql/15/bin}/psql" -X -q -v ON_ERROR_STOP=1 \
    -d "$(corral_conninfo "${CORRAL_PG_PORT}")" >/dev/null <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL, version bigint NOT NULL DEFAULT 1);
INSERT INTO items (id, body) SELECT g, 'item ' || g FROM generate_series(1, 200000) AS g;
INSERT INTO items (id, body) SELECT g, 'item ' || g FROM generate_series(10000001, 10010000) AS g;
ANALYZE items;
CREATE TRIGGER items_corral_notify AFTER INSERT OR UPDATE OR DELETE ON items
  FOR EACH ROW EXECUTE FUNCTION corral_notify('item');
SQL
}

items_on_replicas() {
  local port
  for port in $((CORRAL_PG_PORT + 1)) $((CORRAL_PG_PORT + 2)); do
    [[ $(corral_psql_at "${port}" app app "SELECT count(*) FROM items" 2>/dev/null) == 210000 ]] ||
      return 1
  done
}

# One thread: the default on 2 cores, and what a leak in the event loop would show in.
write_config() {
  cat >"$1" <<EOF
{
  "listen": { "resp": "127.0.0.1:${RESP_PORT}", "http": "127.0.0.1:${HTTP_PORT}" },
  "threads": 1,
  "memory": { "max_bytes": 1048576 },
  "postgres": {
    "primary": "$(corral_conninfo "${CORRAL_PG_PORT}")",
    "replicas": ["$(corral_conninfo $((CORRAL_PG_PORT + 1)))",
                 "$(corral_conninfo $((CORRAL_PG_PORT + 2)))"],
    "pools": { "default": { "connections": 4 } }
  },
  "namespaces": {
    "user": { "query": $(json_string "${USER_QUERY}"), "ttl_ms": 60000 },
    "item": { "query": $(json_string "${ITEM_QUERY}"), "ttl_ms": 60000, "stale_ms": 0 }
  },
  "shutdown": { "drain_grace_ms": 0, "timeout_ms": 5000 },
  "log_level": "${CORRAL_SOAK_LOG_LEVEL:-info}"
}
EOF
}

main() {
  parse_args "$@"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "${OUT_DIR}"
  : >"${OUT_DIR}/events.log"

  WORK_DIR=$(mktemp -d /tmp/corral-soak-run.XXXXXX)
  chmod 755 "${WORK_DIR}" # the postgres user must reach its data directory inside
  CORRAL_PG_DIR=${WORK_DIR}/pg
  CORRAL_PG_PORT=$(corral_free_port_range 3)
  export CORRAL_PG_DIR CORRAL_PG_PORT
  corral_log "PostgreSQL on ports ${CORRAL_PG_PORT}-$((CORRAL_PG_PORT + 2)) in ${CORRAL_PG_DIR}"
  "${DEPLOY_DIR}/pg-local.sh" start >/dev/null
  create_items
  corral_wait_until 60 "the replicas to see the items table" items_on_replicas ||
    corral_die "the items table did not reach the replicas"

  RESP_PORT=$(corral_free_port)
  HTTP_PORT=$(corral_free_port)
  write_config "${OUT_DIR}/corral.json"
  corral_server_start "${SERVER_BIN}" "${OUT_DIR}/corral.json" "${WORK_DIR}/corral.log"
  "${SERVER_BIN}" --version >"${OUT_DIR}/version.txt"
  corral_log "$(cat "${OUT_DIR}/version.txt") (${SERVER_BIN}), pid ${CORRAL_SERVER_PID}," \
    "RESP ${RESP_PORT}, HTTP ${HTTP_PORT}; ${MINUTES} minutes, ${WARMUP} of warm-up;" \
    "results in ${OUT_DIR}"

  local status=0 extra=()
  read -r -a extra <<<"${CORRAL_SOAK_DRIVER_ARGS:-}"
  python3 -B "${SOAK_DIR}/driver.py" --resp-port "${RESP_PORT}" --http-port "${HTTP_PORT}" \
    --pg-port "${CORRAL_PG_PORT}" --pg-local "${DEPLOY_DIR}/pg-local.sh" \
    --server-pid "${CORRAL_SERVER_PID}" --minutes "${MINUTES}" --warmup-minutes "${WARMUP}" \
    --kill-every "${KILL_EVERY}" --rate-scale "${RATE_SCALE}" --seed "${SEED}" \
    --out "${OUT_DIR}/soak.json" --log "${OUT_DIR}/events.log" "${extra[@]}" || status=1
  mkdir -p "${OUT_DIR}/diag"
  curl -s -m 10 "http://127.0.0.1:${HTTP_PORT}/metrics" >"${OUT_DIR}/diag/metrics-end.txt" || true
  if [[ -f ${OUT_DIR}/soak.json ]]; then
    python3 -B "${SOAK_DIR}/report.py" "${OUT_DIR}/soak.json" --md "${OUT_DIR}/soak.md" || status=1
  else
    corral_log "the driver wrote no results"
    status=1
  fi
  if ! kill -0 "${CORRAL_SERVER_PID}" 2>/dev/null; then
    corral_log "corral-server is gone (see ${OUT_DIR}/diag/corral.log)"
    CORRAL_SERVER_PID=""
    status=1
  fi
  echo "soak: $( ((status == 0)) && echo PASS || echo FAIL); results in ${OUT_DIR}"
  return "${status}"
}

main "$@"
