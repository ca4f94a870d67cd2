#!/usr/bin/env bash
# A throwaway PostgreSQL 15 primary plus two streaming replicas on 127.0.0.1, seeded with corral's
# demo schema, for the tests and the demo. Not for production: fsync is off and auth is trust.
#
# Usage: deploy/pg-local.sh start|stop|status|env
#        deploy/pg-local.sh stop-node|start-node|kill-node|pause-node|resume-node NODE
#        (NODE is primary, replica1 or replica2)
#
# start builds the cluster (or starts its stopped nodes) and returns once both replicas stream and
# see the seed data; it then prints the connection settings, as env does. stop stops every node and
# deletes CORRAL_PG_DIR. For failover tests: stop-node is a fast shutdown; start-node returns once a
# replica streams again, or once the running replicas stream from a restarted primary; kill-node
# SIGKILLs the postmaster, like a crash; pause-node SIGSTOPs the postmaster and all its processes, a
# hung server whose open connections stay open and silent; resume-node sends SIGCONT.
#
# Environment: CORRAL_PG_DIR (default /tmp/corral-pg) holds everything; CORRAL_PG_PORT (default
# 5432) is the primary's port, replica1 and replica2 listen on +1 and +2. Once a cluster exists its
# port is remembered in CORRAL_PG_DIR, so later commands need only CORRAL_PG_DIR. Several clusters
# may run side by side with different directories and ports. Commands on one cluster must not run
# concurrently. CORRAL_PG_MAX_CONNECTIONS (default 300) is every node's max_connections, read when
# the cluster is built (benchmarks give cache-aside clients hundreds of connections). As root, the servers run as the `postgres` user.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

# The Debian binaries, named explicitly: another pg_ctl may come first on PATH.
PG_BIN=${CORRAL_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=${CORRAL_PG_DIR:-/tmp/corral-pg}
[[ ${PG_DIR} == /* ]] || PG_DIR=${PWD}/${PG_DIR}
PG_DIR=${PG_DIR%/}
START_TIMEOUT=${CORRAL_PG_START_TIMEOUT:-60}
NODES=(primary replica1 replica2)
# MARKER holds the cluster's base port and marks the directory as ours to delete; READY is written
# once the cluster is fully built.
MARKER=${PG_DIR}/corral-pg.port
READY=${PG_DIR}/corral-pg.ready
SEED_ROWS=10000

# Connection settings from the caller's environment must not redirect our own psql calls.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGSERVICEFILE PGOPTIONS PGPASSWORD \
  PGAPPNAME PGSSLMODE

usage() {
  echo "usage: ${0##*/} start|stop|status|env" >&2
  echo "       ${0##*/} stop-node|start-node|kill-node|pause-node|resume-node NODE" >&2
  exit 2
}

# ---- Cluster layout ------------------------------------------------------------------------------

resolve_port() {
  PG_PORT=$(corral_remembered_port "${MARKER}" CORRAL_PG_PORT 5432 3 "cluster in ${PG_DIR}") ||
    exit 1
}

check_node() {
  case "$1" in
    primary | replica1 | replica2) ;;
    *) corral_die "unknown node '$1' (expected primary, replica1 or replica2)" ;;
  esac
}

node_port() {
  case "$1" in
    primary) echo "${PG_PORT}" ;;
    replica1) echo $((PG_PORT + 1)) ;;
    replica2) echo $((PG_PORT + 2)) ;;
  esac
}

node_dir() { echo "${PG_DIR}/$1"; }
node_data() { echo "${PG_DIR}/$1/data"; }
node_log() { echo "${PG_DIR}/$1/postgres.log"; }

# ---- Running commands ----------------------------------------------------------------------------

pg_ready() { "${PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 2; }

# ---- Process state -------------------------------------------------------------------------------

# Prints the postmaster's pid if NODE's server process is alive (running or paused).
postmaster_pid() {
  local pid_file pid
  pid_file=$(node_data "$1")/postmaster.pid
  [[ -r ${pid_file} ]] || return 1
  pid=$(head -n 1 "${pid_file}")
  [[ ${pid} =~ ^[0-9]+$ ]] || return 1
  corral_process_is postgres "${pid}" || return 1
  echo "${pid}"
}

# Prints stopped, running or paused.
node_state() {
  local pid
  if ! pid=$(postmaster_pid "$1"); then
    echo stopped
  elif [[ $(ps -o stat= -p "${pid}") == T* ]]; then
    echo paused
  else
    echo running
  fi
}

# signal_node NODE SIGNAL: signals the postmaster, then its children (each server process is its own
# session leader, so there is no process group to signal).
signal_node() {
  local pid
  pid=$(postmaster_pid "$1") || corral_die "$1 is not running"
  kill "-$2" "${pid}"
  # shellcheck disable=SC2046  # a list of pids
  kill "-$2" $(pgrep -P "${pid}") 2>/dev/null || true
}

# ---- Building the cluster ------------------------------------------------------------------------

# write_node_conf NODE: the node's settings, included from postgresql.conf.
write_node_conf() {
  local node=$1
  corral_as_postgres tee "$(node_data "${node}")/corral.conf" >/dev/null <<EOF
# Written by deploy/pg-local.sh for ${node}: a fast, throwaway local cluster (fsync is off).
cluster_name = '${node}'
port = $(node_port "${node}")
listen_addresses = '127.0.0.1'
unix_socket_directories = '$(node_dir "${node}")/run'
max_connections = ${CORRAL_PG_MAX_CONNECTIONS:-300}
shared_buffers = 64MB
max_parallel_workers_per_gather = 0
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '

# Replication: WAL for two streaming replicas, kept for them by replication slots. logical (a
# superset of replica) also lets a slot decode the WAL with pgoutput, for invalidation from the WAL
# (issue 17); the replicas stream as before.
wal_level = logical
max_wal_senders = 20
max_replication_slots = 20
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 500ms

# Query statistics, which tests use to count the queries corral sends.
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all

# Test speed over durability.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

init_primary() {
  local data
  data=$(node_data primary)
  corral_as_postgres mkdir -p "$(node_dir primary)/run"
  corral_as_postgres "${PG_BIN}/initdb" -D "${data}" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"${PG_DIR}/initdb.log" 2>&1 || {
    cat "${PG_DIR}/initdb.log" >&2
    corral_die "initdb failed"
  }
  corral_as_postgres tee "${data}/pg_hba.conf" >/dev/null <<'EOF'
# Written by deploy/pg-local.sh: trust on loopback and the local socket, for tests only.
local all         all                trust
local replication all                trust
host  all         all  127.0.0.1/32  trust
host  replication all  127.0.0.1/32  trust
EOF
  echo "include 'corral.conf'" | corral_as_postgres tee -a "${data}/postgresql.conf" >/dev/null
  write_node_conf primary
}

# Creates role and database `app` with pg_stat_statements, the users table and its trigger.
seed_primary() {
  local port
  port=$(node_port primary)
  # app is a superuser: tests also pause replay, reset statistics and end backends.
  corral_psql_at "${port}" postgres postgres "CREATE ROLE app LOGIN SUPERUSER" >/dev/null
  corral_psql_at "${port}" postgres postgres "CREATE DATABASE app OWNER app" >/dev/null
  "${PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -d "$(corral_conninfo "${port}")" \
    -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    -f "${DEPLOY_DIR}/sql/schema.sql" -f "${DEPLOY_DIR}/sql/invalidate.sql" >/dev/null
}

# init_replica NODE: a base backup of the primary that streams from it through its own slot.
init_replica() {
  local node=$1 data primary
  data=$(node_data "${node}")
  primary=$(corral_conninfo "$(node_port primary)" postgres postgres)
  corral_as_postgres mkdir -p "$(node_dir "${node}")/run"
  corral_as_postgres "${PG_BIN}/pg_basebackup" -h 127.0.0.1 -p "$(node_port primary)" -U postgres \
    -D "${data}" -R -X stream -C -S "${node}" -c fast --no-sync
  write_node_conf "${node}"
  # Overrides the primary_conninfo that -R wrote, so pg_stat_replication names the replica.
  echo "primary_conninfo = '${primary} application_name=${node}'" |
    corral_as_postgres tee -a "${data}/postgresql.auto.conf" >/dev/null
}

# start_server NODE: starts NODE's postmaster and waits until it accepts connections.
start_server() {
  local node=$1
  if corral_port_is_listening "$(node_port "${node}")"; then
    corral_die "port $(node_port "${node}") for ${node} is already in use"
  fi
  corral_as_postgres "${PG_BIN}/pg_ctl" -D "$(node_data "${node}")" -l "$(node_log "${node}")" \
    -w -t "${START_TIMEOUT}" -s start || {
    tail -n 20 "$(node_log "${node}")" >&2
    corral_die "${node} did not start"
  }
}

# stop_server NODE [MODE]: stops NODE if it runs (resuming it first if paused); escalates to an
# immediate shutdown and then SIGKILL if it does not stop in time.
stop_server() {
  local node=$1 mode=${2:-fast} data
  data=$(node_data "${node}")
  postmaster_pid "${node}" >/dev/null || return 0
  signal_node "${node}" CONT
  corral_as_postgres "${PG_BIN}/pg_ctl" -D "${data}" -m "${mode}" -w -t 30 -s stop ||
    corral_as_postgres "${PG_BIN}/pg_ctl" -D "${data}" -m immediate -w -t 10 -s stop || {
    corral_log "${node} ignores shutdown; killing it"
    kill_server "${node}"
  }
}

# kill_server NODE: SIGKILLs the postmaster, as a crash would, then waits for its children, which
# exit on their own once they see the postmaster gone.
kill_server() {
  local node=$1 pid children
  pid=$(postmaster_pid "${node}") || return 0
  children=$(pgrep -P "${pid}" | tr '\n' ' ' || true)
  kill -KILL "${pid}"
  # shellcheck disable=SC2086  # a list of pids
  if [[ -n ${children} ]]; then
    kill -CONT ${children} 2>/dev/null || true
    if ! corral_wait_until 10 "${node}'s backends to exit" no_process_left ${children}; then
      kill -KILL ${children} 2>/dev/null || true
    fi
  fi
}

no_process_left() {
  local pid
  for pid in "$@"; do
    if kill -0 "${pid}" 2>/dev/null; then
      return 1
    fi
  done
}

# ---- Conditions ----------------------------------------------------------------------------------

replica_streaming() { # NODE: its WAL receiver streams from the primary
  [[ $(corral_psql_at "$(node_port "$1")" postgres postgres \
    "SELECT status FROM pg_stat_wal_receiver") == streaming ]]
}

primary_sees_replica() { # NODE: the primary streams to it
  [[ $(corral_psql_at "$(node_port primary)" postgres postgres \
    "SELECT state FROM pg_stat_replication WHERE application_name = '$1'") == streaming ]]
}

seed_visible() { # NODE: the seeded users are readable on it
  [[ $(corral_psql_at "$(node_port "$1")" app app "SELECT count(*) FROM users") == "${SEED_ROWS}" ]]
}

# Waits (at most START_TIMEOUT seconds in all) until the primary is up, both replicas stream, and
# both see the seed data.
wait_cluster_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) node
  corral_wait_until $((deadline - SECONDS)) "primary to accept connections" \
    pg_ready "$(node_port primary)" || return 1
  for node in replica1 replica2; do
    corral_wait_until $((deadline - SECONDS)) "${node} to stream from the primary" \
      primary_sees_replica "${node}" || return 1
    corral_wait_until $((deadline - SECONDS)) "${node} to see the seed data" \
      seed_visible "${node}" || return 1
  done
}

# ---- Commands ------------------------------------------------------------------------------------

print_env() {
  printf "export CORRAL_PG_PRIMARY='%s'\n" "$(corral_conninfo "$(node_port primary)")"
  printf "export CORRAL_PG_REPLICAS='%s;%s'\n" "$(corral_conninfo "$(node_port replica1)")" \
    "$(corral_conninfo "$(node_port replica2)")"
  printf "export CORRAL_PG_DIR=%q\n" "${PG_DIR}"
  printf "export CORRAL_PG_PORT=%s\n" "${PG_PORT}"
}

create_cluster() {
  local node
  if [[ -d ${PG_DIR} && -n $(ls -A "${PG_DIR}") ]]; then
    corral_die "${PG_DIR} exists and is not a pg-local.sh cluster; remove it or set CORRAL_PG_DIR"
  fi
  # A Unix socket path must fit in 107 bytes.
  local socket_suffix="/replica1/run/.s.PGSQL.65535"
  if ((${#PG_DIR} + ${#socket_suffix} > 107)); then
    corral_die "CORRAL_PG_DIR is too long for a Unix socket path: ${PG_DIR}"
  fi
  for node in "${NODES[@]}"; do
    if corral_port_is_listening "$(node_port "${node}")"; then
      corral_die "port $(node_port "${node}") for ${node} is already in use; set CORRAL_PG_PORT"
    fi
  done
  [[ -x ${PG_BIN}/initdb ]] || corral_die "no PostgreSQL in ${PG_BIN}; run deploy/install-deps.sh"

  mkdir -p "${PG_DIR}"
  echo "${PG_PORT}" >"${MARKER}"
  if ((EUID == 0)); then
    chown postgres:postgres "${PG_DIR}"
    corral_as_postgres test -w "${PG_DIR}" -a -x "${PG_DIR}" ||
      corral_die "user postgres cannot use ${PG_DIR}; a parent directory may be private (chmod o+x)"
  fi

  corral_log "creating primary on port $(node_port primary) in ${PG_DIR}"
  init_primary
  start_server primary
  seed_primary
  for node in replica1 replica2; do
    corral_log "creating ${node} on port $(node_port "${node}")"
    init_replica "${node}"
    start_server "${node}"
  done
}

cmd_start() {
  local node
  if [[ -f ${MARKER} && ! -f ${READY} ]]; then
    corral_log "${PG_DIR} holds a half-built cluster (an earlier start failed); rebuilding it"
    remove_cluster
  fi
  if [[ -f ${READY} ]]; then
    for node in "${NODES[@]}"; do
      case "$(node_state "${node}")" in
        stopped)
          corral_log "starting ${node} on port $(node_port "${node}")"
          start_server "${node}"
          ;;
        paused)
          corral_log "resuming paused ${node}"
          signal_node "${node}" CONT
          ;;
      esac
    done
  else
    create_cluster
  fi
  wait_cluster_ready || {
    cmd_status >&2 || true
    corral_die "cluster in ${PG_DIR} is not ready; logs: ${PG_DIR}/*/postgres.log"
  }
  touch "${READY}"
  corral_log "primary and 2 streaming replicas are ready; connection settings:"
  print_env
}

remove_cluster() {
  local node
  for node in replica2 replica1 primary; do
    stop_server "${node}"
  done
  rm -rf "${PG_DIR}"
}

cmd_stop() {
  if [[ ! -e ${PG_DIR} ]]; then
    corral_log "no cluster in ${PG_DIR}"
    return 0
  fi
  [[ -f ${MARKER} ]] || corral_die "${PG_DIR} is not a pg-local.sh cluster; not touching it"
  remove_cluster
  corral_log "stopped and removed the cluster in ${PG_DIR}"
}

# Prints one line per node; exits 0 only if all three are running.
cmd_status() {
  local node state port detail all_running=1
  [[ -f ${MARKER} ]] || {
    echo "no cluster in ${PG_DIR}"
    return 3
  }
  for node in "${NODES[@]}"; do
    state=$(node_state "${node}")
    port=$(node_port "${node}")
    detail=""
    if [[ ${state} == running ]]; then
      if [[ ${node} == primary ]]; then
        detail=$(corral_psql_at "${port}" postgres postgres "SELECT coalesce(string_agg(application_name ||
          ' ' || state, ', ' ORDER BY application_name), 'none') FROM pg_stat_replication" ||
          echo "not answering")
        detail="streaming to: ${detail}"
      else
        # WAL received but not yet replayed; the receive position can trail replay after a restart.
        detail=$(corral_psql_at "${port}" postgres postgres "SELECT coalesce((SELECT status FROM
          pg_stat_wal_receiver), 'no wal receiver') || ', replay behind by ' || coalesce(greatest(0,
          pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()))::text, '0') ||
          ' bytes'" || echo "not answering")
      fi
    fi
    [[ ${state} == running ]] || all_running=0
    printf '%-9s port %-5s %-8s %s\n' "${node}" "${port}" "${state}" "${detail}"
  done
  ((all_running)) || return 3
}

cmd_node() {
  local action=$1 node=$2 pid
  check_node "${node}"
  [[ -f ${READY} ]] || corral_die "no ready cluster in ${PG_DIR}; run start first"
  case "${action}" in
    stop-node)
      stop_server "${node}"
      ;;
    start-node)
      if [[ $(node_state "${node}") == stopped ]]; then
        start_server "${node}"
      fi
      wait_node_rejoined "${node}"
      ;;
    kill-node)
      pid=$(postmaster_pid "${node}") || corral_die "${node} is not running"
      kill_server "${node}"
      corral_log "killed ${node} (postmaster ${pid})"
      ;;
    pause-node)
      signal_node "${node}" STOP
      ;;
    resume-node)
      signal_node "${node}" CONT
      ;;
  esac
}

# After start-node: a replica waits until it streams again (if the primary runs); the primary waits
# until every running replica streams from it again.
wait_node_rejoined() {
  local node=$1 replica
  if [[ ${node} != primary ]]; then
    if [[ $(node_state primary) == running ]]; then
      corral_wait_until "${START_TIMEOUT}" "${node} to stream again" replica_streaming "${node}" ||
        corral_die "${node} started but does not stream; see $(node_log "${node}")"
    fi
    return 0
  fi
  for replica in replica1 replica2; do
    if [[ $(node_state "${replica}") == running ]]; then
      corral_wait_until "${START_TIMEOUT}" "${replica} to stream again" \
        primary_sees_replica "${replica}" ||
        corral_die "${replica} does not stream from the restarted primary"
    fi
  done
}

main() {
  (($# >= 1)) || usage
  resolve_port
  case "$1" in
    start | stop | status | env)
      (($# == 1)) || usage
      case "$1" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) print_env ;;
      esac
      ;;
    stop-node | start-node | kill-node | pause-node | resume-node)
      (($# == 2)) || usage
      cmd_node "$1" "$2"
      ;;
    *) usage ;;
  esac
}

main "$@"
