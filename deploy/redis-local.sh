#!/usr/bin/env bash
# A throwaway redis-server on 127.0.0.1 (no persistence), for tests that compare corral with Redis
# or use it as the second tier.
#
# Usage: deploy/redis-local.sh start|stop|status|env
# Environment: CORRAL_REDIS_DIR (default /tmp/corral-redis) holds the pidfile and log;
# CORRAL_REDIS_PORT (default 6379). The port is remembered in CORRAL_REDIS_DIR once started.
# CORRAL_REDIS_EXTRA_ARGS: more redis-server arguments, split at spaces (e.g. its --tls-port
# settings, as bench/cpu-per-request.sh --tls passes them).
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

REDIS_DIR=${CORRAL_REDIS_DIR:-/tmp/corral-redis}
[[ ${REDIS_DIR} == /* ]] || REDIS_DIR=${PWD}/${REDIS_DIR}
REDIS_DIR=${REDIS_DIR%/}
# MARKER holds the port and marks the directory as ours to delete.
MARKER=${REDIS_DIR}/corral-redis.port
PID_FILE=${REDIS_DIR}/redis.pid
LOG_FILE=${REDIS_DIR}/redis.log
START_TIMEOUT=${CORRAL_REDIS_START_TIMEOUT:-30}

usage() {
  echo "usage: ${0##*/} start|stop|status|env" >&2
  exit 2
}

resolve_port() {
  REDIS_PORT=$(corral_remembered_port "${MARKER}" CORRAL_REDIS_PORT 6379 1 "redis in ${REDIS_DIR}") ||
    exit 1
}

# Prints the server's pid if it is alive.
server_pid() {
  local pid
  [[ -r ${PID_FILE} ]] || return 1
  pid=$(<"${PID_FILE}")
  [[ ${pid} =~ ^[0-9]+$ ]] || return 1
  corral_process_is redis-server "${pid}" || return 1
  echo "${pid}"
}

answers_ping() {
  [[ $(redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null) == PONG ]]
}

server_gone() {
  ! server_pid >/dev/null
}

print_env() {
  printf 'export CORRAL_REDIS_PORT=%s\n' "${REDIS_PORT}"
  printf 'export CORRAL_REDIS_DIR=%q\n' "${REDIS_DIR}"
}

cmd_start() {
  if server_pid >/dev/null && answers_ping; then
    corral_log "redis already running on port ${REDIS_PORT}"
    print_env
    return 0
  fi
  if [[ ! -f ${MARKER} && -d ${REDIS_DIR} && -n $(ls -A "${REDIS_DIR}") ]]; then
    corral_die "${REDIS_DIR} exists and is not a redis-local.sh directory; set CORRAL_REDIS_DIR"
  fi
  if corral_port_is_listening "${REDIS_PORT}"; then
    corral_die "port ${REDIS_PORT} is already in use; set CORRAL_REDIS_PORT"
  fi
  command -v redis-server >/dev/null || corral_die "no redis-server; run deploy/install-deps.sh"

  mkdir -p "${REDIS_DIR}"
  echo "${REDIS_PORT}" >"${MARKER}"
  redis-server --bind 127.0.0.1 --port "${REDIS_PORT}" --daemonize yes \
    --dir "${REDIS_DIR}" --pidfile "${PID_FILE}" --logfile "${LOG_FILE}" \
    --save "" --appendonly no --protected-mode yes \
    ${CORRAL_REDIS_EXTRA_ARGS:-} # word splitting wanted: several arguments
  if ! corral_wait_until "${START_TIMEOUT}" "redis to answer PING" answers_ping; then
    tail -n 20 "${LOG_FILE}" >&2 || true
    corral_die "redis did not start"
  fi
  corral_log "redis is ready on 127.0.0.1:${REDIS_PORT}"
  print_env
}

cmd_stop() {
  local pid
  if [[ ! -e ${REDIS_DIR} ]]; then
    corral_log "no redis in ${REDIS_DIR}"
    return 0
  fi
  [[ -f ${MARKER} ]] || corral_die "${REDIS_DIR} is not a redis-local.sh directory; not touching it"
  if pid=$(server_pid); then
    kill -CONT "${pid}" 2>/dev/null || true
    redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" shutdown nosave >/dev/null 2>&1 || true
    if ! corral_wait_until 10 "redis (pid ${pid}) to exit" server_gone; then
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  fi
  rm -rf "${REDIS_DIR}"
  corral_log "stopped redis and removed ${REDIS_DIR}"
}

cmd_status() {
  local pid
  if pid=$(server_pid) && answers_ping; then
    echo "redis     port ${REDIS_PORT} running  pid ${pid}"
  else
    echo "redis     port ${REDIS_PORT} stopped"
    return 3
  fi
}

main() {
  (($# == 1)) || usage
  resolve_port
  case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) print_env ;;
    *) usage ;;
  esac
}

main "$@"
