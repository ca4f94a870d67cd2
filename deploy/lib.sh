# Shared helpers for corral's deploy scripts: messages, condition polling with a deadline, and
# free loopback TCP ports. Source it from bash (`source deploy/lib.sh`); it defines functions only.
# shellcheck shell=bash

# Prints a message to stderr, prefixed with the calling script's name.
corral_log() {
  printf '%s: %s\n' "${CORRAL_LOG_NAME:-${0##*/}}" "$*" >&2
}

# Prints an error to stderr and exits 1.
corral_die() {
  corral_log "error: $*"
  exit 1
}

# corral_wait_until SECONDS DESCRIPTION COMMAND [ARGS...]
# Runs COMMAND every 0.1 s until it succeeds (returns 0) or SECONDS have passed (returns 1 after
# naming DESCRIPTION on stderr). This polls a condition; it never sleeps "to let things settle".
corral_wait_until() {
  local seconds=$1 description=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      corral_log "timed out after ${seconds}s waiting for ${description}"
      return 1
    fi
    sleep 0.1
  done
}

# corral_process_is COMMAND PID
# Succeeds if PID is a live (not zombie) process whose command name is COMMAND.
corral_process_is() {
  local stat comm
  read -r stat comm < <(ps -o stat=,comm= -p "$2" 2>/dev/null) || return 1
  [[ ${stat} != Z* && ${comm} == "$1" ]]
}

# corral_port_is_free PORT
# Succeeds if no TCP socket on this host (listening or connected, any address) uses local PORT.
corral_port_is_free() {
  local port=$1
  ! ss -Htan 2>/dev/null | awk -v p=":${port}" '
    substr($4, length($4) - length(p) + 1) == p { found = 1 }
    END { exit !found }'
}

# corral_port_is_listening PORT
# Succeeds if some process listens on TCP PORT (any address). Unlike corral_port_is_free, this
# ignores connections in TIME_WAIT, which do not stop a server that sets SO_REUSEADDR from binding.
corral_port_is_listening() {
  ss -Hltn 2>/dev/null | awk -v p=":$1" '
    substr($4, length($4) - length(p) + 1) == p { found = 1 }
    END { exit !found }'
}

# corral_free_port_range COUNT
# Prints a base port B such that B .. B+COUNT-1 are all free on 127.0.0.1. Ports are drawn at random
# below the kernel's ephemeral range (so outgoing connections cannot take them) within 20000-60000.
# Another process may still take a port between this check and its use; callers bind soon after.
corral_free_port_range() {
  local count=${1:-1} low=20000 high=60000 ephemeral_low
  ephemeral_low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 0)
  if ((ephemeral_low > low + 1000 && ephemeral_low <= high)); then
    high=$((ephemeral_low - 1))
  fi
  local attempt base i ok
  for ((attempt = 0; attempt < 200; attempt++)); do
    base=$((low + (RANDOM * 32768 + RANDOM) % (high - low - count + 2)))
    ok=1
    for ((i = 0; i < count; i++)); do
      if ! corral_port_is_free $((base + i)); then
        ok=0
        break
      fi
    done
    if ((ok)); then
      echo "${base}"
      return 0
    fi
  done
  corral_log "no ${count} consecutive free ports found in ${low}-${high}"
  return 1
}

# corral_free_port: prints one free port (see corral_free_port_range).
corral_free_port() {
  corral_free_port_range 1
}

# corral_remembered_port MARKER VAR DEFAULT COUNT WHAT
# Prints the base port of a local service (WHAT, for messages) whose directory remembers its port in
# MARKER once started: the remembered port (dies if the environment variable VAR names another),
# else $VAR, else DEFAULT. Dies unless COUNT consecutive ports from it are valid. Call it as
# `port=$(corral_remembered_port ...) || exit 1`.
corral_remembered_port() {
  local marker=$1 var=$2 default=$3 count=$4 what=$5 port
  local requested=${!var:-}
  if [[ -f ${marker} ]]; then
    port=$(<"${marker}")
    if [[ -n ${requested} && ${requested} != "${port}" ]]; then
      corral_die "${what} uses port ${port}, not ${var}=${requested}"
    fi
  else
    port=${requested:-${default}}
  fi
  if [[ ! ${port} =~ ^[0-9]+$ ]] || ((port == 0 || port + count - 1 > 65535)); then
    corral_die "bad port '${port}'"
  fi
  echo "${port}"
}

# ---- PostgreSQL (shared by pg-local.sh and pgbouncer-local.sh) ----------------------------------

# corral_conninfo PORT [USER [DBNAME]]: a libpq connection string for 127.0.0.1.
corral_conninfo() {
  echo "host=127.0.0.1 port=$1 dbname=${3:-app} user=${2:-app}"
}

# Runs a command as the postgres user when we are root (PostgreSQL and PgBouncer refuse to run as
# root), else as ourselves. The working directory is / so postgres can always read it.
corral_as_postgres() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# corral_psql_at PORT USER DBNAME SQL: prints the unaligned result; fails if nothing answers.
corral_psql_at() {
  "${CORRAL_PG_BIN:-/usr/lib/postgresql/15/bin}/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
    -d "$(corral_conninfo "$1" "$2" "$3") connect_timeout=5" -c "$4"
}

# ---- corral-server (shared by demo.sh and bench/herd/record.sh) ----------------------------------

CORRAL_SERVER_PID=""

# corral_server_start BIN CONFIG LOG: starts corral-server in the background (pid in
# CORRAL_SERVER_PID) and returns once it answers PING on RESP_PORT and /healthz on HTTP_PORT (both
# from the environment, as in CONFIG); dies with the log's tail if it exits or does not come up.
corral_server_start() {
  local bin=$1 config=$2 log=$3
  "${bin}" --config "${config}" 2>"${log}" &
  CORRAL_SERVER_PID=$!
  if ! corral_wait_until 30 "corral-server to answer" _corral_server_ready ||
    ! kill -0 "${CORRAL_SERVER_PID}" 2>/dev/null; then
    tail -n 20 "${log}" >&2
    corral_die "corral-server did not come up"
  fi
}

# Ready, or gone (so that the wait ends at once when the server died).
_corral_server_ready() {
  kill -0 "${CORRAL_SERVER_PID}" 2>/dev/null || return 0
  [[ $(redis-cli -h 127.0.0.1 -p "${RESP_PORT}" ping 2>/dev/null) == PONG ]] &&
    curl -fsS "http://127.0.0.1:${HTTP_PORT}/healthz" >/dev/null
}

_corral_server_gone() {
  ! kill -0 "${CORRAL_SERVER_PID}" 2>/dev/null
}

# corral_server_stop: SIGTERM (a graceful drain), SIGKILL after 10 s. Does nothing if not started.
corral_server_stop() {
  [[ -n ${CORRAL_SERVER_PID} ]] || return 0
  kill -TERM "${CORRAL_SERVER_PID}" 2>/dev/null || true
  if ! corral_wait_until 10 "corral-server to exit after SIGTERM" _corral_server_gone; then
    kill -KILL "${CORRAL_SERVER_PID}" 2>/dev/null || true
  fi
  wait "${CORRAL_SERVER_PID}" 2>/dev/null || true
  CORRAL_SERVER_PID=""
}
