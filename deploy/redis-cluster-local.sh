#!/usr/bin/env bash
# A throwaway Redis Cluster on 127.0.0.1: 3 masters and 3 replicas (no persistence), for the tests
# and benchmarks of corral's shared second tier on Redis Cluster (SPEC.md "Scale-out").
#
# Usage: deploy/redis-cluster-local.sh start|stop|status|env
#        deploy/redis-cluster-local.sh failover|kill-node|start-node PORT
#
# start creates the cluster (or restarts its stopped nodes) and returns once every node reports
# cluster_state:ok and every replica's link to its master is up; it then prints the settings, as
# env does: CORRAL_REDIS_CLUSTER_NODES lists every node as 127.0.0.1:PORT, the current masters
# first. stop stops all six and deletes CORRAL_REDIS_CLUSTER_DIR. For failover tests: failover
# PORT runs CLUSTER FAILOVER on the replica of the master on PORT and returns once the two have
# swapped roles (it prints the new master's port); kill-node PORT SIGKILLs a node, like a crash,
# and returns at once (a killed master's replica takes over once cluster-node-timeout, 2 s, has
# passed and it has won the election: about 5 s on a loaded 2-core machine); start-node PORT starts
# a stopped node again (a replaced master rejoins as a replica) and waits until the cluster is whole.
#
# Environment: CORRAL_REDIS_CLUSTER_DIR (default /tmp/corral-redis-cluster) holds every node's
# directory, pidfile, log and nodes.conf. CORRAL_REDIS_CLUSTER_PORT is the first node's port: the
# nodes listen on PORT .. PORT+5 and talk over the cluster bus on PORT+6 .. PORT+11 (redis 7's
# cluster-port, so no port above 65535 is needed). Without it, start takes 12 free consecutive
# ports. Once started the port is remembered in the directory, so later commands need only
# CORRAL_REDIS_CLUSTER_DIR. Commands on one cluster must not run concurrently.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

CLUSTER_DIR=${CORRAL_REDIS_CLUSTER_DIR:-/tmp/corral-redis-cluster}
[[ ${CLUSTER_DIR} == /* ]] || CLUSTER_DIR=${PWD}/${CLUSTER_DIR}
CLUSTER_DIR=${CLUSTER_DIR%/}
# MARKER holds the base port and marks the directory as ours to delete; READY is written once the
# cluster has been created (its slots assigned), so a later start restarts nodes instead.
MARKER=${CLUSTER_DIR}/corral-redis-cluster.port
READY=${CLUSTER_DIR}/corral-redis-cluster.ready
START_TIMEOUT=${CORRAL_REDIS_CLUSTER_START_TIMEOUT:-30}
NODE_COUNT=6
PORT_COUNT=$((2 * NODE_COUNT)) # client ports, then bus ports
NODE_TIMEOUT_MS=2000

usage() {
  echo "usage: ${0##*/} start|stop|status|env" >&2
  echo "       ${0##*/} failover|kill-node|start-node PORT" >&2
  exit 2
}

# ---- Layout --------------------------------------------------------------------------------------

# BASE_PORT: the remembered port, else $CORRAL_REDIS_CLUSTER_PORT, else (for start) free ports,
# else empty (no cluster here, and none asked for).
resolve_port() {
  local command=$1
  if [[ -f ${MARKER} || -n ${CORRAL_REDIS_CLUSTER_PORT:-} ]]; then
    BASE_PORT=$(corral_remembered_port "${MARKER}" CORRAL_REDIS_CLUSTER_PORT 0 "${PORT_COUNT}" \
      "redis cluster in ${CLUSTER_DIR}") || exit 1
  elif [[ ${command} == start ]]; then
    BASE_PORT=$(corral_free_port_range "${PORT_COUNT}") || exit 1
  else
    BASE_PORT=""
  fi
}

# The nodes' client ports, in layout order (redis-cli makes the first three the masters).
node_ports() {
  local i
  for ((i = 0; i < NODE_COUNT; i++)); do
    echo $((BASE_PORT + i))
  done
}

node_dir() { echo "${CLUSTER_DIR}/$1"; }
node_log() { echo "${CLUSTER_DIR}/$1/redis.log"; }
node_pid_file() { echo "${CLUSTER_DIR}/$1/redis.pid"; }

check_node() {
  if [[ ! $1 =~ ^[0-9]+$ ]] || (($1 < BASE_PORT || $1 >= BASE_PORT + NODE_COUNT)); then
    corral_die "no node on port '$1' (the nodes listen on ${BASE_PORT}..$((BASE_PORT + 5)))"
  fi
}

# ---- Talking to nodes ----------------------------------------------------------------------------

cli() {
  local port=$1
  shift
  redis-cli -h 127.0.0.1 -p "${port}" "$@"
}

# Prints the node's pid if it is alive.
server_pid() {
  local pid_file pid
  pid_file=$(node_pid_file "$1")
  [[ -r ${pid_file} ]] || return 1
  pid=$(<"${pid_file}")
  [[ ${pid} =~ ^[0-9]+$ ]] || return 1
  corral_process_is redis-server "${pid}" || return 1
  echo "${pid}"
}

server_gone() { ! server_pid "$1" >/dev/null; }

answers_ping() { [[ $(cli "$1" ping 2>/dev/null) == PONG ]]; }

# info PORT SECTION: INFO SECTION's text (CLUSTER INFO for section cluster).
info() {
  if [[ $2 == cluster ]]; then
    cli "$1" cluster info 2>/dev/null
  else
    cli "$1" info "$2" 2>/dev/null
  fi
}

# field NAME: the value of "NAME:value" in the INFO text on stdin (in bash alone: the status and
# the waits call it often).
field() {
  local line
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ ${line} == "$1:"* ]]; then
      echo "${line#*:}"
      return 0
    fi
  done
}

# info_field PORT SECTION FIELD: one field of INFO SECTION (or CLUSTER INFO for section cluster).
info_field() {
  local out
  out=$(info "$1" "$2") || return 1
  field "$3" <<<"${out}"
}

# Prints "PORT ROLE MASTER_PORT" per node (MASTER_PORT "-" for a master), as the node on any
# answering port sees the cluster, masters first, each group by port. Fails if no node answers.
cluster_roles() {
  local port out
  for port in $(node_ports); do
    if out=$(cli "${port}" cluster nodes 2>/dev/null) && [[ -n ${out} ]]; then
      awk '
        { split($2, a, "[@,]"); split(a[1], hp, ":"); port[$1] = hp[2]
          role[$1] = ($3 ~ /master/) ? "master" : "replica"; of[$1] = $4; ids[++n] = $1 }
        END {
          for (i = 1; i <= n; i++) {
            id = ids[i]
            printf "%s %s %s\n", port[id], role[id], (of[id] in port) ? port[of[id]] : "-"
          }
        }' <<<"${out}" | sort -k2,2 -k1,1n
      return 0
    fi
  done
  return 1
}

# ---- Conditions ----------------------------------------------------------------------------------

# Every node runs, sees all six nodes and every slot served, and says cluster_state:ok; every
# replica's link to its master is up.
cluster_whole() {
  local port cluster replication
  for port in $(node_ports); do
    cluster=$(info "${port}" cluster) || return 1
    [[ $(field cluster_state <<<"${cluster}") == ok ]] || return 1
    [[ $(field cluster_known_nodes <<<"${cluster}") == "${NODE_COUNT}" ]] || return 1
    [[ $(field cluster_slots_ok <<<"${cluster}") == 16384 ]] || return 1
    replication=$(info "${port}" replication) || return 1
    if [[ $(field role <<<"${replication}") == slave ]]; then
      [[ $(field master_link_status <<<"${replication}") == up ]] || return 1
    fi
  done
  # Three masters, each with one replica.
  [[ $(cluster_roles | awk '$2 == "master"' | wc -l) == 3 ]]
}

# PORT was a replica and is now a master, and its old master OLD is its replica with the link up.
roles_swapped() {
  local port=$1 old=$2
  [[ $(info_field "${port}" replication role) == master ]] || return 1
  [[ $(info_field "${old}" replication role) == slave ]] || return 1
  [[ $(info_field "${old}" replication master_port) == "${port}" ]] || return 1
  [[ $(info_field "${old}" replication master_link_status) == up ]]
}

wait_cluster_whole() {
  corral_wait_until "${START_TIMEOUT}" "cluster_state:ok on every node and every replica linked" \
    cluster_whole || {
    cmd_status >&2 || true
    corral_die "the cluster in ${CLUSTER_DIR} is not whole; logs: ${CLUSTER_DIR}/*/redis.log"
  }
}

# ---- Nodes ---------------------------------------------------------------------------------------

# start_server PORT: starts the node (creating its directory) and waits until it answers PING.
start_server() {
  local port=$1 dir
  dir=$(node_dir "${port}")
  if corral_port_is_listening "${port}" || corral_port_is_listening $((port + NODE_COUNT)); then
    corral_die "port ${port} or its bus port $((port + NODE_COUNT)) is already in use"
  fi
  mkdir -p "${dir}"
  # repl-diskless-sync-delay 0: a replica's first sync starts at once, not after the 5 s default.
  redis-server --bind 127.0.0.1 --port "${port}" --cluster-port $((port + NODE_COUNT)) \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout "${NODE_TIMEOUT_MS}" --daemonize yes --dir "${dir}" \
    --pidfile "$(node_pid_file "${port}")" --logfile "$(node_log "${port}")" \
    --save "" --appendonly no --repl-diskless-sync-delay 0 --protected-mode yes
}

wait_answers() {
  local port=$1
  corral_wait_until "${START_TIMEOUT}" "the node on port ${port} to answer PING" \
    answers_ping "${port}" || {
    tail -n 20 "$(node_log "${port}")" >&2 || true
    corral_die "the node on port ${port} did not start"
  }
}

# stop_servers PORT...: asks each running node to shut down, then waits for all of them (SIGKILL
# after 10 s).
stop_servers() {
  local port pid
  for port in "$@"; do
    if pid=$(server_pid "${port}"); then
      kill -CONT "${pid}" 2>/dev/null || true
      cli "${port}" shutdown nosave >/dev/null 2>&1 || true
    fi
  done
  for port in "$@"; do
    if pid=$(server_pid "${port}"); then
      if ! corral_wait_until 10 "the node on port ${port} (pid ${pid}) to exit" \
        server_gone "${port}"; then
        kill -KILL "${pid}" 2>/dev/null || true
      fi
    fi
  done
}

# ---- Commands ------------------------------------------------------------------------------------

print_env() {
  local nodes="" port
  if [[ -n ${BASE_PORT} ]]; then
    local ports
    # The current masters first when the cluster answers; else the layout (masters first).
    ports=$(cluster_roles 2>/dev/null | awk '{ print $1 }') || ports=""
    [[ $(wc -w <<<"${ports}") == "${NODE_COUNT}" ]] || ports=$(node_ports)
    for port in ${ports}; do
      nodes+=${nodes:+,}127.0.0.1:${port}
    done
  fi
  printf 'export CORRAL_REDIS_CLUSTER_NODES=%s\n' "${nodes}"
  printf 'export CORRAL_REDIS_CLUSTER_DIR=%q\n' "${CLUSTER_DIR}"
  printf 'export CORRAL_REDIS_CLUSTER_PORT=%s\n' "${BASE_PORT}"
}

create_cluster() {
  local port addresses=()
  if [[ -d ${CLUSTER_DIR} && -n $(ls -A "${CLUSTER_DIR}") ]]; then
    corral_die "${CLUSTER_DIR} exists and is not a redis-cluster-local.sh directory;" \
      "set CORRAL_REDIS_CLUSTER_DIR"
  fi
  for ((port = BASE_PORT; port < BASE_PORT + PORT_COUNT; port++)); do
    if corral_port_is_listening "${port}"; then
      corral_die "port ${port} is already in use; set CORRAL_REDIS_CLUSTER_PORT"
    fi
  done
  mkdir -p "${CLUSTER_DIR}"
  echo "${BASE_PORT}" >"${MARKER}"
  for port in $(node_ports); do
    start_server "${port}"
    addresses+=("127.0.0.1:${port}")
  done
  for port in $(node_ports); do
    wait_answers "${port}"
  done
  corral_log "creating a cluster of 3 masters and 3 replicas on ports" \
    "${BASE_PORT}..$((BASE_PORT + NODE_COUNT - 1))"
  redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes \
    >"${CLUSTER_DIR}/create.log" 2>&1 || {
    cat "${CLUSTER_DIR}/create.log" >&2
    corral_die "redis-cli --cluster create failed"
  }
}

cmd_start() {
  local port started=()
  command -v redis-server >/dev/null || corral_die "no redis-server; run deploy/install-deps.sh"
  if [[ -f ${MARKER} && ! -f ${READY} ]]; then
    corral_log "${CLUSTER_DIR} holds a half-built cluster (an earlier start failed); rebuilding it"
    remove_cluster
    mkdir -p "${CLUSTER_DIR}"
  fi
  if [[ -f ${READY} ]]; then
    for port in $(node_ports); do
      if ! server_pid "${port}" >/dev/null; then
        corral_log "starting the node on port ${port}"
        start_server "${port}"
        started+=("${port}")
      fi
    done
    for port in "${started[@]}"; do
      wait_answers "${port}"
    done
    ((${#started[@]} > 0)) || corral_log "redis cluster already running on ports" \
      "${BASE_PORT}..$((BASE_PORT + NODE_COUNT - 1))"
  else
    create_cluster
  fi
  wait_cluster_whole
  touch "${READY}"
  corral_log "redis cluster is ready (3 masters, 3 replicas); settings:"
  print_env
}

remove_cluster() {
  # shellcheck disable=SC2046  # a list of ports
  stop_servers $(node_ports)
  rm -rf "${CLUSTER_DIR}"
}

cmd_stop() {
  if [[ ! -e ${CLUSTER_DIR} ]]; then
    corral_log "no redis cluster in ${CLUSTER_DIR}"
    return 0
  fi
  [[ -f ${MARKER} ]] ||
    corral_die "${CLUSTER_DIR} is not a redis-cluster-local.sh directory; not touching it"
  remove_cluster
  corral_log "stopped the redis cluster and removed ${CLUSTER_DIR}"
}

# Prints one line per node; exits 0 only if the cluster is whole (as cluster_whole, from one look
# at each node).
cmd_status() {
  local port pid roles role cluster replication detail whole=1
  [[ -f ${MARKER} ]] || {
    echo "no redis cluster in ${CLUSTER_DIR}"
    return 3
  }
  roles=$(cluster_roles 2>/dev/null) || roles=""
  [[ $(awk '$2 == "master"' <<<"${roles}" | wc -l) == 3 ]] || whole=0
  for port in $(node_ports); do
    if pid=$(server_pid "${port}") && cluster=$(info "${port}" cluster) &&
      replication=$(info "${port}" replication); then
      role=$(awk -v p="${port}" '$1 == p { print $2 ($3 == "-" ? "" : " of " $3) }' <<<"${roles}")
      detail="${role:-unknown role}, cluster_state $(field cluster_state <<<"${cluster}")"
      [[ $(field cluster_state <<<"${cluster}") == ok &&
        $(field cluster_known_nodes <<<"${cluster}") == "${NODE_COUNT}" &&
        $(field cluster_slots_ok <<<"${cluster}") == 16384 ]] || whole=0
      if [[ $(field role <<<"${replication}") == slave ]]; then
        detail+=", link $(field master_link_status <<<"${replication}")"
        [[ $(field master_link_status <<<"${replication}") == up ]] || whole=0
      fi
      printf 'redis     port %-5s running  pid %-7s %s\n' "${port}" "${pid}" "${detail}"
    else
      whole=0
      printf 'redis     port %-5s stopped\n' "${port}"
    fi
  done
  ((whole)) || return 3
}

cmd_failover() {
  local master=$1 replica
  check_node "${master}"
  [[ $(info_field "${master}" replication role) == master ]] ||
    corral_die "the node on port ${master} is not a master"
  replica=$(cluster_roles | awk -v m="${master}" '$2 == "replica" && $3 == m { print $1; exit }')
  [[ -n ${replica} ]] || corral_die "the master on port ${master} has no replica"
  cli "${replica}" cluster failover >/dev/null || corral_die "CLUSTER FAILOVER on ${replica} failed"
  corral_wait_until "${START_TIMEOUT}" "${replica} and ${master} to swap roles" \
    roles_swapped "${replica}" "${master}" || corral_die "the failover to ${replica} did not finish"
  wait_cluster_whole
  corral_log "failed over: ${replica} is the master, ${master} its replica"
  echo "${replica}"
}

cmd_node() {
  local action=$1 port=$2 pid
  check_node "${port}"
  [[ -f ${READY} ]] || corral_die "no ready cluster in ${CLUSTER_DIR}; run start first"
  case "${action}" in
    failover) cmd_failover "${port}" ;;
    kill-node)
      pid=$(server_pid "${port}") || corral_die "the node on port ${port} is not running"
      kill -KILL "${pid}"
      corral_wait_until 10 "the node on port ${port} to exit" server_gone "${port}" || true
      corral_log "killed the node on port ${port} (pid ${pid})"
      ;;
    start-node)
      if ! server_pid "${port}" >/dev/null; then
        start_server "${port}"
        wait_answers "${port}"
      fi
      wait_cluster_whole
      ;;
  esac
}

main() {
  (($# >= 1)) || usage
  resolve_port "$1"
  case "$1" in
    start | stop | status | env)
      (($# == 1)) || usage
      if [[ -z ${BASE_PORT} ]]; then
        # Nothing was ever started here and no port was given.
        case "$1" in
          stop) cmd_stop ;;
          status) cmd_status ;;
          env) print_env ;;
        esac
        return
      fi
      case "$1" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) print_env ;;
      esac
      ;;
    failover | kill-node | start-node)
      (($# == 2)) || usage
      [[ -n ${BASE_PORT} ]] || corral_die "no redis cluster in ${CLUSTER_DIR}"
      cmd_node "$1" "$2"
      ;;
    *) usage ;;
  esac
}

main "$@"
