#!/usr/bin/env bash
# Invalidation from the WAL against the NOTIFY trigger (issue 17), side by side in one run:
#  1. commit-to-invalidation latency: bench/wal_latency.cc (corral_wal_latency) caches a key,
#     commits an UPDATE of its row (synchronous_commit on) and polls corral until the key is gone;
#     once through a table with corral's NOTIFY trigger (postgres.invalidation notify) and once
#     through a table with no trigger, in the publication a second corral reads (logical);
#  2. the primary's cost: pgbench with CLIENTS concurrent writers updating random rows of a table
#     with no invalidation, of the table with the NOTIFY trigger (its corral listening), and of the
#     published table (its corral reading the slot), alternated for ROUNDS rounds; the medians of
#     transactions per second and their ratios to "none".
# Starts PostgreSQL (deploy/pg-local.sh: its own directory and ports; fsync off, the pgbench
# sessions commit with synchronous_commit on) and both corral-servers.
#
# Usage: bench/wal-invalidation.sh [--rounds N] [--seconds S] [--clients C] [--updates U]
#                                  [--server PATH] [OUT_DIR]
#   defaults: 3 rounds of 10 s per mode, 32 clients, 2000 latency updates per mode;
#   CORRAL_BUILD_DIR/cache-server/corral-server and CORRAL_BUILD_DIR/bench/corral_wal_latency
#   (CORRAL_BUILD_DIR default build). Builds nothing. OUT_DIR (default a new directory under /tmp)
#   gets results.json, pgbench's and corral's logs.
# Exit status: 0 when every measurement ran, 1 otherwise, 2 on bad usage.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY_DIR=${ROOT_DIR}/deploy
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
SERVER_BIN=${BUILD_DIR}/cache-server/corral-server
LATENCY_BIN=${BUILD_DIR}/bench/corral_wal_latency
ROUNDS=3
SECONDS_PER_MODE=10
CLIENTS=32
UPDATES=2000
OUT_DIR=""
while (($#)); do
  case $1 in
    --rounds) ROUNDS=${2:-}; shift 2 ;;
    --seconds) SECONDS_PER_MODE=${2:-}; shift 2 ;;
    --clients) CLIENTS=${2:-}; shift 2 ;;
    --updates) UPDATES=${2:-}; shift 2 ;;
    --server) SERVER_BIN=${2:-}; shift 2 ;;
    -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "wal-invalidation.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) OUT_DIR=$1; shift ;;
  esac
done
for n in "${ROUNDS}" "${SECONDS_PER_MODE}" "${CLIENTS}" "${UPDATES}"; do
  [[ ${n} =~ ^[1-9][0-9]*$ ]] || {
    echo "wal-invalidation.sh: '${n}' is not a positive integer" >&2
    exit 2
  }
done
for bin in "${SERVER_BIN}" "${LATENCY_BIN}"; do
  [[ -x ${bin} ]] || { echo "wal-invalidation.sh: no executable ${bin}" >&2; exit 2; }
done
command -v pgbench >/dev/null || { echo "wal-invalidation.sh: pgbench is missing" >&2; exit 2; }
[[ -n ${OUT_DIR} ]] || OUT_DIR=$(mktemp -d /tmp/corral-wal-invalidation.XXXXXX)
mkdir -p "${OUT_DIR}"

WORK_DIR=""
NOTIFY_PID=""
WAL_PID=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_corral NOTIFY_PID
  stop_corral WAL_PID
  if [[ -n ${WORK_DIR} ]]; then
    "${DEPLOY_DIR}/pg-local.sh" stop >/dev/null 2>&1 || true
    rm -rf "${WORK_DIR}"
  fi
  exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_corral VAR NAME RESP HTTP: starts corral-server with OUT_DIR/NAME.json; its pid in VAR.
start_corral() {
  local var=$1 name=$2
  RESP_PORT=$3 HTTP_PORT=$4
  corral_server_start "${SERVER_BIN}" "${OUT_DIR}/${name}.json" "${OUT_DIR}/${name}.log"
  printf -v "${var}" '%s' "${CORRAL_SERVER_PID}"
  CORRAL_SERVER_PID=""
}

# stop_corral VAR: stops the corral-server whose pid VAR holds, if any.
stop_corral() {
  local var=$1
  CORRAL_SERVER_PID=${!var}
  corral_server_stop
  printf -v "${var}" '%s' ""
}

WORK_DIR=$(mktemp -d /tmp/corral-wal-invalidation-run.XXXXXX)
chmod 755 "${WORK_DIR}" # the postgres user must reach its data directory inside
CORRAL_PG_DIR=${WORK_DIR}/pg
CORRAL_PG_PORT=$(corral_free_port_range 3)
export CORRAL_PG_DIR CORRAL_PG_PORT
corral_log "PostgreSQL on ports ${CORRAL_PG_PORT}-$((CORRAL_PG_PORT + 2))"
"${DEPLOY_DIR}/pg-local.sh" start >/dev/null
eval "$("${DEPLOY_DIR}/pg-local.sh" env)"
PRIMARY=${CORRAL_PG_PRIMARY}
REPLICA=${CORRAL_PG_REPLICAS%%;*}

psql -X -q -v ON_ERROR_STOP=1 -d "${PRIMARY}" <<'SQL'
SET client_min_messages = warning;
CREATE TABLE bench_plain (id bigint PRIMARY KEY, name text, version bigint NOT NULL DEFAULT 1);
CREATE TABLE bench_notify (LIKE bench_plain INCLUDING ALL);
CREATE TABLE bench_wal (LIKE bench_plain INCLUDING ALL);
INSERT INTO bench_plain (id, name) SELECT g, 'row ' || g FROM generate_series(1, 10000) g;
INSERT INTO bench_notify SELECT * FROM bench_plain;
INSERT INTO bench_wal SELECT * FROM bench_plain;
CREATE TRIGGER bench_notify_corral AFTER INSERT OR UPDATE OR DELETE ON bench_notify
  FOR EACH ROW EXECUTE FUNCTION corral_notify('nb');
SQL

NOTIFY_RESP=$(corral_free_port)
NOTIFY_HTTP=$(corral_free_port)
WAL_RESP=$(corral_free_port)
WAL_HTTP=$(corral_free_port)
namespace() { # NAME TABLE [EXTRA]
  printf '"%s": {"query": "SELECT name FROM %s WHERE id = $1::bigint", "ttl_ms": 600000%s}' \
    "$1" "$2" "${3:-}"
}
cat >"${OUT_DIR}/notify.json" <<EOF
{ "listen": { "resp": "127.0.0.1:${NOTIFY_RESP}", "http": "127.0.0.1:${NOTIFY_HTTP}" },
  "postgres": { "primary": "${PRIMARY}", "replicas": ["${REPLICA}"] },
  "namespaces": { $(namespace nb bench_notify) } }
EOF
cat >"${OUT_DIR}/wal.json" <<EOF
{ "listen": { "resp": "127.0.0.1:${WAL_RESP}", "http": "127.0.0.1:${WAL_HTTP}" },
  "postgres": { "primary": "${PRIMARY}", "replicas": ["${REPLICA}"], "invalidation": "logical" },
  "namespaces": { $(namespace wb bench_wal ', "table": "bench_wal"') } }
EOF
export CORRAL_NODE_NAME=bench
start_corral NOTIFY_PID notify "${NOTIFY_RESP}" "${NOTIFY_HTTP}"
start_corral WAL_PID wal "${WAL_RESP}" "${WAL_HTTP}"

# The WAL corral has applied everything the primary has written (its slot confirmed it).
caught_up() {
  local target
  target=$(psql -X -At -d "${PRIMARY}" -c "SELECT pg_current_wal_insert_lsn()")
  [[ $(psql -X -At -d "${PRIMARY}" -c "SELECT confirmed_flush_lsn >= '${target}'::pg_lsn FROM \
pg_replication_slots WHERE slot_name = 'corral_bench'") == t ]]
}
corral_wait_until 60 "the WAL corral to catch up" caught_up

corral_log "commit-to-invalidation latency, ${UPDATES} updates each"
"${LATENCY_BIN}" --pg "${PRIMARY}" --port "${NOTIFY_RESP}" --table bench_notify --ns nb \
  --rounds "${UPDATES}" --label notify | tee "${OUT_DIR}/latency-notify.txt"
"${LATENCY_BIN}" --pg "${PRIMARY}" --port "${WAL_RESP}" --table bench_wal --ns wb \
  --rounds "${UPDATES}" --label logical | tee "${OUT_DIR}/latency-logical.txt"

for mode in plain notify wal; do
  printf '\\set id random(1, 10000)\nUPDATE bench_%s SET version = version + 1 WHERE id = :id;\n' \
    "${mode}" >"${OUT_DIR}/update-${mode}.sql"
done
# Only the mode's own invalidation runs: the WAL corral (whose walsender decodes all WAL) is
# stopped for the other two and catches up before its own.
TPS_FILE=${OUT_DIR}/tps.txt
: >"${TPS_FILE}"
for round in $(seq 1 "${ROUNDS}"); do
  for mode in none notify logical; do
    case ${mode} in
      none) table=plain; stop_corral WAL_PID ;;
      notify) table=notify; stop_corral WAL_PID ;;
      logical)
        table=wal
        start_corral WAL_PID wal "${WAL_RESP}" "${WAL_HTTP}"
        corral_wait_until 120 "the WAL corral to catch up" caught_up
        ;;
    esac
    PGOPTIONS="-c synchronous_commit=on" pgbench -n -c "${CLIENTS}" -j 2 -T "${SECONDS_PER_MODE}" \
      -f "${OUT_DIR}/update-${table}.sql" "${PRIMARY}" >"${OUT_DIR}/pgbench-${mode}-${round}.log" 2>&1
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "${OUT_DIR}/pgbench-${mode}-${round}.log" | head -1)
    [[ -n ${tps} ]] || corral_die "pgbench ${mode}: no tps (see ${OUT_DIR}/pgbench-${mode}-${round}.log)"
    echo "${round} ${mode} ${tps}" | tee -a "${TPS_FILE}"
  done
done
if [[ -z ${WAL_PID} ]]; then start_corral WAL_PID wal "${WAL_RESP}" "${WAL_HTTP}"; fi
corral_wait_until 120 "the WAL corral to catch up after pgbench" caught_up

python3 - "${OUT_DIR}" "${CLIENTS}" "${SECONDS_PER_MODE}" <<'PY'
import json, statistics, sys
out, clients, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tps = {}
for line in open(f"{out}/tps.txt"):
    _, mode, value = line.split()
    tps.setdefault(mode, []).append(float(value))
median = {m: statistics.median(v) for m, v in tps.items()}
latency = {}
for mode in ("notify", "logical"):
    lines = open(f"{out}/latency-{mode}.txt").read().splitlines()
    latency[mode] = json.loads(lines[-1])
result = {"clients": clients, "seconds_per_mode": seconds, "tps": tps, "tps_median": median,
          "ratio_to_none": {m: round(median[m] / median["none"], 3) for m in median},
          "latency_ms": latency}
json.dump(result, open(f"{out}/results.json", "w"), indent=2)
print(f"primary tps, median of {len(tps['none'])} rounds, {clients} writers:")
for m in ("none", "notify", "logical"):
    print(f"  {m:8} {median[m]:10.1f}  x{median[m] / median['none']:.3f}")
for m in ("notify", "logical"):
    l = latency[m]
    print(f"commit-to-invalidation {m:8} p50 {l['p50_ms']:.2f} ms  p99 {l['p99_ms']:.2f} ms"
          f"  max {l['max_ms']:.2f} ms")
PY
corral_log "results in ${OUT_DIR}/results.json"
