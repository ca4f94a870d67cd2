#!/usr/bin/env bash
# corral's demo: builds corral-server, starts a local PostgreSQL primary with two replicas, runs
# corral in front of them, talks to it with redis-cli, redis-benchmark and curl, then stops it all.
#
# Usage: deploy/demo.sh
# Environment: CORRAL_BUILD_DIR (default build, relative to the repository root). Ports are the
# defaults (PostgreSQL 5432-5434, RESP 6380, HTTP 8080) when free, else free ones.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "${DEPLOY_DIR}/.." && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
SERVER_BIN=${BUILD_DIR}/cache-server/corral-server
HERD_BIN=${BUILD_DIR}/bench/corral-herd
# The herd's namespace: one row per key, 200 ms per query, so that a herd has time to pile up.
# shellcheck disable=SC2016  # $1 is the query's parameter, not the shell's
SLOW_QUERY='SELECT name FROM users, pg_sleep(0.2) WHERE id = $1::bigint'
REDIS_STARTED=0

WORK_DIR=""  # temporary directory: PostgreSQL data, corral's config and log
RESP_PORT=""
HTTP_PORT=""

step() {
  printf '\n==> %s\n' "$*"
}

# run COMMAND...: shows a command, then runs it.
run() {
  printf '$ %s\n' "$*"
  "$@"
}

# ports DEFAULT COUNT: prints DEFAULT if DEFAULT .. DEFAULT+COUNT-1 are free, else a free base port.
ports() {
  local base=$1 count=$2 i
  for ((i = 0; i < count; i++)); do
    if corral_port_is_listening $((base + i)); then
      corral_free_port_range "${count}"
      return
    fi
  done
  echo "${base}"
}

# ---- Steps ---------------------------------------------------------------------------------------

install_deps() {
  step "install dependencies"
  "${DEPLOY_DIR}/install-deps.sh"
}

build_server() {
  step "build corral-server (${BUILD_DIR})"
  cmake -S "${ROOT_DIR}" -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "${BUILD_DIR}" -j "$(nproc)" --target corral-server corral-herd
  [[ -x ${SERVER_BIN} ]] || corral_die "no ${SERVER_BIN} after the build"
  [[ -x ${HERD_BIN} ]] || corral_die "no ${HERD_BIN} after the build"
}

start_postgres() {
  step "start PostgreSQL: a primary and 2 streaming replicas, 10 000 users"
  WORK_DIR=$(mktemp -d /tmp/corral-demo.XXXXXX)
  chmod 755 "${WORK_DIR}" # the postgres user must reach its data directory inside
  CORRAL_PG_DIR=${WORK_DIR}/pg
  CORRAL_PG_PORT=$(ports 5432 3)
  export CORRAL_PG_DIR CORRAL_PG_PORT
  "${DEPLOY_DIR}/pg-local.sh" start >/dev/null
  "${DEPLOY_DIR}/pg-local.sh" status
}

# Writes corral.json: the example config with this demo's ports.
write_config() {
  RESP_PORT=$(ports 6380 1)
  HTTP_PORT=$(ports 8080 1)
  if ((HTTP_PORT == RESP_PORT)); then
    HTTP_PORT=$(corral_free_port)
  fi
  # Through placeholders, so that a new port can never match a later pattern.
  sed -e 's/127\.0\.0\.1:6380/@RESP@/' -e 's/127\.0\.0\.1:8080/@HTTP@/' \
    -e 's/port=5432 /@PORT0@ /' -e 's/port=5433 /@PORT1@ /' -e 's/port=5434 /@PORT2@ /' \
    "${DEPLOY_DIR}/corral.example.json" |
    sed -e "s/@RESP@/127.0.0.1:${RESP_PORT}/" -e "s/@HTTP@/127.0.0.1:${HTTP_PORT}/" \
      -e "s/@PORT0@/port=${CORRAL_PG_PORT}/" -e "s/@PORT1@/port=$((CORRAL_PG_PORT + 1))/" \
      -e "s/@PORT2@/port=$((CORRAL_PG_PORT + 2))/" \
      -e "s/\"namespaces\": {/\"namespaces\": {\n    \"slow\": { \"query\": \"${SLOW_QUERY//\$/\\$}\", \"max_inflight_loads\": 512 },/" \
      >"${WORK_DIR}/corral.json"
}

start_server() {
  write_config
  step "start corral-server: RESP 127.0.0.1:${RESP_PORT}, HTTP 127.0.0.1:${HTTP_PORT}"
  run "${SERVER_BIN}" --check-config "${WORK_DIR}/corral.json"
  corral_server_start "${SERVER_BIN}" "${WORK_DIR}/corral.json" "${WORK_DIR}/corral.log"
  # The demo reads through PostgreSQL: wait for the database (/readyz/database), not just for
  # corral to take traffic (/readyz says only that).
  if ! corral_wait_until 30 "corral to reach a usable replica" database_ready; then
    tail -n 20 "${WORK_DIR}/corral.log" >&2
    corral_die "corral-server never reached the database"
  fi
  echo "corral-server is up (pid ${CORRAL_SERVER_PID}, log ${WORK_DIR}/corral.log)"
}

database_ready() {
  curl -fsS "http://127.0.0.1:${HTTP_PORT}/readyz/database" >/dev/null 2>&1
}

# The main event: herds of concurrent requests for cold keys, against corral and against the usual
# cache-aside recipe on Redis (GET; on a miss, query PostgreSQL and SET), with PostgreSQL's own
# pg_stat_statements counting the queries each one caused.
demo_herd() {
  step "start Redis for the cache-aside comparison"
  CORRAL_REDIS_DIR=${WORK_DIR}/redis
  CORRAL_REDIS_PORT=$(ports 6379 1)
  export CORRAL_REDIS_DIR CORRAL_REDIS_PORT
  "${DEPLOY_DIR}/redis-local.sh" start >/dev/null
  REDIS_STARTED=1
  step "a thundering herd: 1000 clients on one cold key, then 100 cold keys x 10 clients"
  eval "$("${DEPLOY_DIR}/pg-local.sh" env)"
  run "${HERD_BIN}" --scenario cold,keys --targets corral,redis-naive \
    --corral "127.0.0.1:${RESP_PORT}" --redis "127.0.0.1:${CORRAL_REDIS_PORT}" \
    --pg-primary "${CORRAL_PG_PRIMARY}" --pg-replicas "${CORRAL_PG_REPLICAS}" \
    --namespace slow --query "${SLOW_QUERY}" --ttl-ms 60000 \
    --clients 1000 --keys 100 --clients-per-key 10 --out "${WORK_DIR}/herd"
  echo "# corral: one query per cold key, however many clients ask; cache-aside: one per client."
}

demo_resp() {
  step "RESP: redis-cli against corral"
  run redis-cli -p "${RESP_PORT}" ping
  run redis-cli -p "${RESP_PORT}" set greeting hello
  run redis-cli -p "${RESP_PORT}" get greeting
  echo "# user:42 is read through from a replica on the first GET, then served from memory:"
  run redis-cli -p "${RESP_PORT}" get user:42
  run redis-cli -p "${RESP_PORT}" get user:42
}

demo_benchmark() {
  step "redis-benchmark against corral"
  local benchmark=(redis-benchmark -p "${RESP_PORT}" -t "ping,set,get" -n 100000 -c 50 -q)
  if [[ -t 1 ]]; then
    run "${benchmark[@]}"
  else
    # Into a log, keep the results and drop the progress lines, which end in carriage returns.
    printf '$ %s\n' "${benchmark[*]}"
    "${benchmark[@]}" | tr '\r' '\n' | grep 'requests per second'
  fi
}

demo_http() {
  step "HTTP: health, readiness, the database's state, a cached user, metrics"
  run curl -sS -i "http://127.0.0.1:${HTTP_PORT}/healthz"
  echo
  echo "# /readyz: ready to take traffic (listening, not draining); never the database's state."
  run curl -sS -i "http://127.0.0.1:${HTTP_PORT}/readyz"
  echo
  echo "# /readyz/database: a usable replica in every pool (for dashboards and alerts)."
  run curl -sS -i "http://127.0.0.1:${HTTP_PORT}/readyz/database"
  echo
  run curl -sS -i "http://127.0.0.1:${HTTP_PORT}/v1/cache/user/7"
  echo
  printf '$ curl -sS http://127.0.0.1:%s/metrics | head -n 20\n' "${HTTP_PORT}"
  curl -sS "http://127.0.0.1:${HTTP_PORT}/metrics" | head -n 20
}

# Invalidation from the WAL: a table with no trigger, a second corral that reads the primary's
# WAL through a replication slot (postgres.invalidation "logical"), and an UPDATE that reaches it.
WAL_PID=""
demo_wal() {
  step "invalidation from the WAL: an UPDATE on a table with no trigger"
  eval "$("${DEPLOY_DIR}/pg-local.sh" env)"
  run psql -X -q -d "${CORRAL_PG_PRIMARY}" -c "CREATE TABLE notes (id bigint PRIMARY KEY, body text)" \
    -c "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g"
  local resp http
  resp=$(corral_free_port)
  http=$(corral_free_port)
  cat >"${WORK_DIR}/corral-wal.json" <<EOF
{
  "listen": { "resp": "127.0.0.1:${resp}", "http": "127.0.0.1:${http}" },
  "postgres": {
    "primary": "${CORRAL_PG_PRIMARY}",
    "replicas": ["${CORRAL_PG_REPLICAS//;/\", \"}"],
    "invalidation": "logical"
  },
  "namespaces": {
    "note": { "query": "SELECT body FROM notes WHERE id = \$1::bigint", "table": "public.notes" }
  }
}
EOF
  echo "# a second corral: postgres.invalidation \"logical\", namespace note over public.notes"
  CORRAL_NODE_NAME=demo RESP_PORT=${resp} HTTP_PORT=${http} \
    corral_server_start "${SERVER_BIN}" "${WORK_DIR}/corral-wal.json" "${WORK_DIR}/corral-wal.log"
  WAL_PID=${CORRAL_SERVER_PID}
  CORRAL_SERVER_PID=${MAIN_PID}
  wal_connected() { grep -q "event=wal_stream_connected" "${WORK_DIR}/corral-wal.log"; }
  corral_wait_until 30 "the WAL stream to connect" wal_connected || corral_die "no WAL stream"
  run psql -X -q -At -d "${CORRAL_PG_PRIMARY}" \
    -c "SELECT 'triggers on notes: ' || count(*) FROM pg_trigger WHERE tgrelid = 'notes'::regclass" \
    -c "SELECT 'slot ' || slot_name || ', plugin ' || plugin FROM pg_replication_slots WHERE slot_name = 'corral_demo'"
  run redis-cli -p "${resp}" get note:1
  run psql -X -q -d "${CORRAL_PG_PRIMARY}" -c "UPDATE notes SET body = 'edited' WHERE id = 1"
  invalidated() { [[ $(redis-cli -p "${resp}" exists note:1) == 0 ]]; }
  corral_wait_until 10 "the WAL to invalidate note:1" invalidated || corral_die "note:1 was not invalidated"
  run redis-cli -p "${resp}" get note:1
  printf '$ curl -sS http://127.0.0.1:%s/metrics | grep -E ...\n' "${http}"
  curl -sS "http://127.0.0.1:${http}/metrics" |
    grep -E '^corral_(invalidations_total\{source="wal"\}|replication_)'
  echo "# no trigger, nothing lost across a disconnect: the slot keeps what corral has not confirmed."
}

# ---- Teardown ------------------------------------------------------------------------------------

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n ${WORK_DIR} ]]; then
    step "stop corral-server and PostgreSQL"
    corral_server_stop
    if [[ -n ${WAL_PID} ]]; then
      CORRAL_SERVER_PID=${WAL_PID}
      corral_server_stop
    fi
    if ((REDIS_STARTED)); then "${DEPLOY_DIR}/redis-local.sh" stop || true; fi
    "${DEPLOY_DIR}/pg-local.sh" stop || true
    rm -rf "${WORK_DIR}"
  fi
  exit "${status}"
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  install_deps
  build_server
  start_postgres
  start_server
  demo_herd
  demo_resp
  demo_benchmark
  demo_http
  MAIN_PID=${CORRAL_SERVER_PID}
  demo_wal
}

main "$@"
