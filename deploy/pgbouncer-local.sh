#!/usr/bin/env bash
# PgBouncer in transaction pooling mode in front of each replica of a running pg-local.sh cluster:
# one pgbouncer process per replica on 127.0.0.1, for the tests and the demo. Trust auth; not for
# production.
#
# Usage: deploy/pgbouncer-local.sh start|stop|status|env
#        deploy/pgbouncer-local.sh stop-node|start-node NODE      (NODE is replica1 or replica2)
#
# start starts a bouncer per replica (or the ones that are stopped) and returns once psql gets an
# answer through each; it then prints the connection settings, as env does. stop stops them and
# deletes CORRAL_BOUNCER_DIR. stop-node stops one replica's bouncer (its clients see their
# connections drop); start-node starts it again on the same port.
#
# Environment: CORRAL_PG_DIR (default /tmp/corral-pg) names the pg-local.sh cluster;
# CORRAL_BOUNCER_DIR (default CORRAL_PG_DIR/bouncer) holds each bouncer's config, pidfile and log;
# CORRAL_BOUNCER_PORT, if set, is replica1's bouncer port and replica2's is the next one, else two
# free ports are picked. Ports are remembered in CORRAL_BOUNCER_DIR. As root, the bouncers run as
# the `postgres` user (pgbouncer refuses to run as root).
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

PGBOUNCER=${CORRAL_PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
PG_BIN=${CORRAL_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=${CORRAL_PG_DIR:-/tmp/corral-pg}
[[ ${PG_DIR} == /* ]] || PG_DIR=${PWD}/${PG_DIR}
PG_DIR=${PG_DIR%/}
BOUNCER_DIR=${CORRAL_BOUNCER_DIR:-${PG_DIR}/bouncer}
[[ ${BOUNCER_DIR} == /* ]] || BOUNCER_DIR=${PWD}/${BOUNCER_DIR}
BOUNCER_DIR=${BOUNCER_DIR%/}
START_TIMEOUT=${CORRAL_BOUNCER_START_TIMEOUT:-30}
NODES=(replica1 replica2)
# MARKER marks the directory as ours to delete.
MARKER=${BOUNCER_DIR}/corral-bouncer.dir
PG_MARKER=${PG_DIR}/corral-pg.port
PG_READY=${PG_DIR}/corral-pg.ready

# Connection settings from the caller's environment must not redirect our own psql calls.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGSERVICEFILE PGOPTIONS PGPASSWORD \
  PGAPPNAME PGSSLMODE

usage() {
  echo "usage: ${0##*/} start|stop|status|env" >&2
  echo "       ${0##*/} stop-node|start-node NODE   (replica1 or replica2)" >&2
  exit 2
}

# ---- Layout --------------------------------------------------------------------------------------

check_node() {
  case "$1" in
    replica1 | replica2) ;;
    *) corral_die "unknown node '$1' (expected replica1 or replica2)" ;;
  esac
}

node_dir() { echo "${BOUNCER_DIR}/$1"; }
node_ini() { echo "${BOUNCER_DIR}/$1/pgbouncer.ini"; }
node_pid_file() { echo "${BOUNCER_DIR}/$1/pgbouncer.pid"; }
node_log() { echo "${BOUNCER_DIR}/$1/pgbouncer.log"; }
node_port_file() { echo "${BOUNCER_DIR}/$1/port"; }

# The bouncer's own port, remembered since its first start.
node_port() {
  local file
  file=$(node_port_file "$1")
  [[ -r ${file} ]] || corral_die "no bouncer for $1 in ${BOUNCER_DIR}; run start first"
  cat "${file}"
}

# The replica's PostgreSQL port, from the pg-local.sh cluster (replica1 = base + 1, replica2 = + 2).
replica_port() {
  local base
  [[ -r ${PG_MARKER} ]] || corral_die "no pg-local.sh cluster in ${PG_DIR}; set CORRAL_PG_DIR"
  base=$(<"${PG_MARKER}")
  [[ ${base} =~ ^[0-9]+$ ]] || corral_die "bad port in ${PG_MARKER}"
  case "$1" in
    replica1) echo $((base + 1)) ;;
    replica2) echo $((base + 2)) ;;
  esac
}

# ---- Running commands ----------------------------------------------------------------------------

# A query through NODE's bouncer reaches its replica.
bouncer_answers() {
  [[ $(corral_psql_at "$(node_port "$1")" app app "SELECT 1") == 1 ]]
}

# Prints the pid if NODE's pgbouncer is alive.
bouncer_pid() {
  local pid_file pid
  pid_file=$(node_pid_file "$1")
  [[ -r ${pid_file} ]] || return 1
  pid=$(<"${pid_file}")
  [[ ${pid} =~ ^[0-9]+$ ]] || return 1
  corral_process_is pgbouncer "${pid}" || return 1
  echo "${pid}"
}

bouncer_gone() { ! bouncer_pid "$1" >/dev/null; }

# ---- Configuration -------------------------------------------------------------------------------

# write_userlist: with auth_type trust no password is checked, but pgbouncer still only admits the
# users listed in auth_file. app is corral's user; postgres may use the admin console.
write_userlist() {
  corral_as_postgres tee "${BOUNCER_DIR}/userlist.txt" >/dev/null <<'EOF'
"app" ""
"postgres" ""
EOF
}

# write_node_ini NODE PORT: the bouncer's configuration.
write_node_ini() {
  local node=$1 port=$2
  corral_as_postgres tee "$(node_ini "${node}")" >/dev/null <<EOF
; Written by deploy/pgbouncer-local.sh: PgBouncer in front of ${node}, for tests only (trust auth).
[databases]
; Every database name maps to the same-named database on the replica.
* = host=127.0.0.1 port=$(replica_port "${node}")

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
; No Unix socket: several bouncers run side by side and clients use TCP.
unix_socket_dir =
pidfile = $(node_pid_file "${node}")
logfile = $(node_log "${node}")
auth_type = trust
auth_file = ${BOUNCER_DIR}/userlist.txt
admin_users = postgres
stats_users = app

; Transaction pooling: a server connection belongs to a client only for one transaction, so no
; session state (SET, prepared statements, LISTEN) survives from one transaction to the next.
pool_mode = transaction
default_pool_size = 20
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = 40
; LIFO: a client gets the server connection released last (the default, relied on by the tests).
server_round_robin = 0
; libpq and libpqxx send these in the startup packet; pgbouncer would refuse the connection.
ignore_startup_parameters = extra_float_digits,options,application_name

; Fail fast in tests: a replica that restarts is tried again after 1 s, and a client waits at most
; 10 s for a server connection.
server_login_retry = 1
server_connect_timeout = 5
query_wait_timeout = 10
server_idle_timeout = 60
log_connections = 0
log_disconnections = 1
log_pooler_errors = 1
EOF
}

# ---- Starting and stopping -----------------------------------------------------------------------

# start_node NODE: starts NODE's bouncer unless it runs, then waits until a query gets through.
start_node() {
  local node=$1 port
  port=$(node_port "${node}")
  if ! bouncer_pid "${node}" >/dev/null; then
    if corral_port_is_listening "${port}"; then
      corral_die "port ${port} for ${node}'s bouncer is already in use"
    fi
    # The ini names the replica's current port, in case the cluster was rebuilt.
    write_node_ini "${node}" "${port}"
    corral_log "starting the bouncer for ${node} on port ${port}"
    corral_as_postgres "${PGBOUNCER}" -d "$(node_ini "${node}")" || {
      tail -n 20 "$(node_log "${node}")" >&2 || true
      corral_die "pgbouncer for ${node} did not start"
    }
  fi
  corral_wait_until "${START_TIMEOUT}" "a query through ${node}'s bouncer (port ${port})" \
    bouncer_answers "${node}" || {
    tail -n 20 "$(node_log "${node}")" >&2 || true
    corral_die "the bouncer for ${node} does not answer; log: $(node_log "${node}")"
  }
}

# stop_node NODE: SIGTERM (pgbouncer's immediate shutdown), then SIGKILL if it does not exit.
stop_node() {
  local node=$1 pid
  pid=$(bouncer_pid "${node}") || return 0
  kill -TERM "${pid}" 2>/dev/null || true
  if ! corral_wait_until 10 "${node}'s bouncer to exit" bouncer_gone "${node}"; then
    corral_log "${node}'s bouncer ignores SIGTERM; killing it"
    kill -KILL "${pid}" 2>/dev/null || true
    corral_wait_until 5 "${node}'s bouncer to die" bouncer_gone "${node}" || true
  fi
}

# Creates the directory and picks the ports on the first start.
create_layout() {
  local base node i=0
  if [[ -d ${BOUNCER_DIR} && -n $(ls -A "${BOUNCER_DIR}") ]]; then
    corral_die "${BOUNCER_DIR} exists and is not a pgbouncer-local.sh directory; set CORRAL_BOUNCER_DIR"
  fi
  [[ -x ${PGBOUNCER} ]] || corral_die "no ${PGBOUNCER}; run deploy/install-deps.sh"
  if [[ -n ${CORRAL_BOUNCER_PORT:-} ]]; then
    base=${CORRAL_BOUNCER_PORT}
    if [[ ! ${base} =~ ^[0-9]+$ ]] || ((base == 0 || base + 1 > 65535)); then
      corral_die "bad CORRAL_BOUNCER_PORT '${base}'"
    fi
  else
    base=$(corral_free_port_range "${#NODES[@]}")
  fi
  mkdir -p "${BOUNCER_DIR}"
  touch "${MARKER}"
  if ((EUID == 0)); then
    chown postgres:postgres "${BOUNCER_DIR}"
    corral_as_postgres test -w "${BOUNCER_DIR}" -a -x "${BOUNCER_DIR}" ||
      corral_die "user postgres cannot use ${BOUNCER_DIR}; a parent directory may be private"
  fi
  for node in "${NODES[@]}"; do
    corral_as_postgres mkdir -p "$(node_dir "${node}")"
    echo $((base + i)) | corral_as_postgres tee "$(node_port_file "${node}")" >/dev/null
    i=$((i + 1))
  done
  write_userlist
}

# show_pools PORT: one summary per pool from the admin console's SHOW POOLS, found by column name.
show_pools() {
  "${PG_BIN}/psql" -X -q -A -F '|' -d "$(corral_conninfo "$1" postgres pgbouncer) connect_timeout=5" \
    -c "SHOW POOLS" 2>/dev/null | awk -F'|' '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    NF > 1 && $col["database"] != "pgbouncer" {
      printf "%s%s/%s clients active=%s waiting=%s, servers active=%s idle=%s", sep,
        $col["database"], $col["user"], $col["cl_active"], $col["cl_waiting"],
        $col["sv_active"], $col["sv_idle"]
      sep = "; "
    }'
}

# ---- Commands ------------------------------------------------------------------------------------

print_env() {
  printf "export CORRAL_PG_BOUNCER_REPLICAS='%s;%s'\n" "$(corral_conninfo "$(node_port replica1)")" \
    "$(corral_conninfo "$(node_port replica2)")"
  printf "export CORRAL_BOUNCER_DIR=%q\n" "${BOUNCER_DIR}"
}

cmd_start() {
  local node
  [[ -f ${PG_READY} ]] || corral_die "no ready pg-local.sh cluster in ${PG_DIR}; start it first"
  [[ -f ${MARKER} ]] || create_layout
  for node in "${NODES[@]}"; do
    start_node "${node}"
  done
  corral_log "a transaction-mode bouncer answers in front of each replica; connection settings:"
  print_env
}

cmd_stop() {
  local node
  if [[ ! -e ${BOUNCER_DIR} ]]; then
    corral_log "no bouncers in ${BOUNCER_DIR}"
    return 0
  fi
  [[ -f ${MARKER} ]] || corral_die "${BOUNCER_DIR} is not a pgbouncer-local.sh directory; not touching it"
  for node in "${NODES[@]}"; do
    stop_node "${node}"
  done
  rm -rf "${BOUNCER_DIR}"
  corral_log "stopped the bouncers and removed ${BOUNCER_DIR}"
}

# Prints one line per bouncer with its pool counters; exits 0 only if both answer.
cmd_status() {
  local node port state detail all_ok=1
  [[ -f ${MARKER} ]] || {
    echo "no bouncers in ${BOUNCER_DIR}"
    return 3
  }
  for node in "${NODES[@]}"; do
    port=$(node_port "${node}")
    detail=""
    if bouncer_pid "${node}" >/dev/null; then
      state=running
      if bouncer_answers "${node}"; then
        detail=$(show_pools "${port}")
        detail="answers${detail:+; }${detail}"
      else
        detail="not answering"
        all_ok=0
      fi
    else
      state=stopped
      all_ok=0
    fi
    printf '%-9s port %-5s %-8s -> replica port %-5s %s\n' "${node}" "${port}" "${state}" \
      "$(replica_port "${node}" 2>/dev/null || echo '?')" "${detail}"
  done
  ((all_ok)) || return 3
}

cmd_node() {
  local action=$1 node=$2
  check_node "${node}"
  [[ -f ${MARKER} ]] || corral_die "no bouncers in ${BOUNCER_DIR}; run start first"
  case "${action}" in
    stop-node) stop_node "${node}" ;;
    start-node) start_node "${node}" ;;
  esac
}

main() {
  (($# >= 1)) || usage
  case "$1" in
    start | stop | status | env)
      (($# == 1)) || usage
      case "$1" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env)
          [[ -f ${MARKER} ]] || corral_die "no bouncers in ${BOUNCER_DIR}; run start first"
          print_env
          ;;
      esac
      ;;
    stop-node | start-node)
      (($# == 2)) || usage
      cmd_node "$1" "$2"
      ;;
    *) usage ;;
  esac
}

main "$@"
