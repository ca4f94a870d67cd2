#!/usr/bin/env bash
# The hit path, corral vs redis-server, as README.md reports it: redis-benchmark GET and SET,
# non-pipelined and -P 16, against redis-server and corral-server with `threads` 1 and 2, all
# running at once on loopback; the servers alternate within each round (the order rotates each
# round) and the medians of ROUNDS runs are compared. With --memory, also RSS per key for 1 M keys
# with 100-byte values loaded with redis-cli --pipe.
#
# Usage: bench/hit-vs-redis.sh [--memory] [ROUNDS]   (ROUNDS default 5)
# Environment: CORRAL_BUILD_DIR (default build). Needs redis-server, redis-benchmark, redis-cli.
# The machine is shared and the benchmark client shares its cores with the servers: read the ratios
# of one run, not absolute figures across runs.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY_DIR=${ROOT_DIR}/deploy
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
SERVER_BIN=${BUILD_DIR}/cache-server/corral-server

MEMORY=0
if [[ ${1:-} == --memory ]]; then
  MEMORY=1
  shift
fi
ROUNDS=${1:-5}
[[ ${ROUNDS} =~ ^[1-9][0-9]*$ ]] || corral_die "ROUNDS must be a positive integer, got '${ROUNDS}'"

WORK_DIR=""
REDIS_STARTED=0
declare -A PORT=()    # server name → RESP port
declare -A PID=()     # corral server name → pid
declare -A RESULT=()  # "server test" → space-separated requests/s of every round
SERVERS=(redis corral-t1 corral-t2)
# name: redis-benchmark arguments
TESTS=("SET" "SET -P 16" "GET" "GET -P 16")

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$? name
  trap - EXIT INT TERM
  for name in "${!PID[@]}"; do
    CORRAL_SERVER_PID=${PID[${name}]}
    corral_server_stop
  done
  if ((REDIS_STARTED)); then "${DEPLOY_DIR}/redis-local.sh" stop >/dev/null || true; fi
  [[ -z ${WORK_DIR} ]] || rm -rf "${WORK_DIR}"
  exit "${status}"
}

# start_corral NAME THREADS: a corral-server with no database (plain SET/GET keys).
start_corral() {
  local name=$1 threads=$2
  RESP_PORT=$(corral_free_port)
  HTTP_PORT=$(corral_free_port)
  cat >"${WORK_DIR}/${name}.json" <<EOF
{ "listen": { "resp": "127.0.0.1:${RESP_PORT}", "http": "127.0.0.1:${HTTP_PORT}" },
  "threads": ${threads}, "memory": { "max_bytes": 1073741824 }, "log_level": "warn" }
EOF
  corral_server_start "${SERVER_BIN}" "${WORK_DIR}/${name}.json" "${WORK_DIR}/${name}.log"
  PORT[${name}]=${RESP_PORT}
  PID[${name}]=${CORRAL_SERVER_PID}
}

# bench PORT TEST: prints requests/s.
bench() {
  local port=$1 command=${2%% *} pipeline=1 n=200000
  if [[ $2 == *"-P 16" ]]; then
    pipeline=16
    n=1000000
  fi
  redis-benchmark -h 127.0.0.1 -p "${port}" -c 50 -r 100000 -n "${n}" -P "${pipeline}" \
    -t "${command,,}" --csv | awk -F'"' 'NR == 2 { printf "%d\n", $4 }'
}

median() {
  tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rss_kib PID
rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# memory NAME PID: RSS per key after loading 1 M keys with 100-byte values.
memory() {
  local name=$1 pid=$2 port=${PORT[$1]} before after
  redis-cli -p "${port}" flushall >/dev/null
  before=$(rss_kib "${pid}")
  redis-cli -p "${port}" --pipe <"${WORK_DIR}/1m.resp" >/dev/null
  after=$(rss_kib "${pid}")
  # The growth is what the keys cost, the eviction policy's state included (corral's TinyLFU
  # sketch grows with the keys); the total adds each server's empty footprint.
  printf '%-10s %8d keys  RSS +%6d MiB  %5.1f bytes/key  (total RSS %d MiB, %5.1f bytes/key)\n' \
    "${name}" "$(redis-cli -p "${port}" dbsize)" $(((after - before) / 1024)) \
    "$(awk -v a="${after}" -v b="${before}" 'BEGIN { print (a - b) * 1024 / 1000000 }')" \
    $((after / 1024)) "$(awk -v a="${after}" 'BEGIN { print a * 1024 / 1000000 }')"
  redis-cli -p "${port}" flushall >/dev/null
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  [[ -x ${SERVER_BIN} ]] || corral_die "no ${SERVER_BIN}: build corral-server first"
  WORK_DIR=$(mktemp -d /tmp/corral-hit.XXXXXX)
  CORRAL_REDIS_DIR=${WORK_DIR}/redis
  CORRAL_REDIS_PORT=$(corral_free_port)
  export CORRAL_REDIS_DIR CORRAL_REDIS_PORT
  "${DEPLOY_DIR}/redis-local.sh" start >/dev/null
  REDIS_STARTED=1
  PORT[redis]=${CORRAL_REDIS_PORT}
  start_corral corral-t1 1
  start_corral corral-t2 2

  local round i s test server line
  for ((round = 0; round < ROUNDS; round++)); do
    for ((i = 0; i < ${#SERVERS[@]}; i++)); do
      server=${SERVERS[$(((i + round) % ${#SERVERS[@]}))]}
      line="round $((round + 1)) ${server}:"
      for test in "${TESTS[@]}"; do
        s=$(bench "${PORT[${server}]}" "${test}")
        RESULT["${server} ${test}"]+=" ${s}"
        line+=" ${test} ${s}"
      done
      echo "${line}" >&2
    done
  done

  printf '\nrequests/s, median of %d rounds (redis-benchmark -c 50 -r 100000; -n 200000, -P 16: -n 1000000)\n' \
    "${ROUNDS}"
  printf '%-10s' server
  for test in "${TESTS[@]}"; do printf ' %18s' "${test}"; done
  printf '\n'
  local base m
  for server in "${SERVERS[@]}"; do
    printf '%-10s' "${server}"
    for test in "${TESTS[@]}"; do
      m=$(median <<<"${RESULT["${server} ${test}"]}")
      base=$(median <<<"${RESULT["redis ${test}"]}")
      if [[ ${server} == redis ]]; then
        printf ' %18s' "${m}"
      else
        printf ' %10s (%4.2fx)' "${m}" "$(awk -v m="${m}" -v b="${base}" 'BEGIN { print m / b }')"
      fi
    done
    printf '\n'
  done

  if ((MEMORY)); then
    printf '\nmemory: 1 000 000 keys (key:NNNNNNN) with 100-byte values, redis-cli --pipe\n'
    python3 - "${WORK_DIR}/1m.resp" <<'EOF'
import sys
value = b"v" * 100
with open(sys.argv[1], "wb") as out:
    for i in range(1_000_000):
        key = b"key:%07d" % i
        out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(key), key, value))
EOF
    memory redis "$(cat "${CORRAL_REDIS_DIR}/redis.pid")"
    memory corral-t2 "${PID[corral-t2]}"
  fi
}

main "$@"
