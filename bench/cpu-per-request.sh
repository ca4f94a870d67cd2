#!/usr/bin/env bash
# Server CPU per request, corral vs redis-server (README "Hit path"): `perf stat -e task-clock`
# on the server process while redis-benchmark runs GET, SET, GET -P 16 and SET -P 16; the targets
# alternate within each round (the order rotates) and the medians of ROUNDS rounds are compared
# (with a second binary, also the median of the two binaries' per-round ratios).
# CPU per request, unlike requests/s, does not depend on how much of the two cores the benchmark
# client took. A second corral binary (e.g. the build before a change) runs as a third target.
#
# Usage: bench/cpu-per-request.sh [--rounds N] [--threads T] [--tls] [CORRAL_BIN [OTHER_CORRAL_BIN]]
#   CORRAL_BIN default build/cache-server/corral-server; --rounds default 5; --threads (corral's
#   `threads`) default 1, as Redis serves commands on one thread. --tls: every target is reached
#   over TLS (Redis's tls-port, corral's listen.resp_tls; redis-benchmark --tls) with a
#   certificate made by openssl for the run. Builds nothing.
# Needs redis-server, redis-benchmark, redis-cli, and perf (falls back to /proc/PID/stat utime +
# stime, 10 ms resolution, when perf cannot count, and says so).
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY_DIR=${ROOT_DIR}/deploy
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

ROUNDS=5
THREADS=1
TLS=0
TLS_ARGS=()  # --tls --cacert CERT for redis-benchmark and redis-cli
BINS=()
while (($#)); do
  case $1 in
    --rounds) ROUNDS=${2:-}; shift 2 ;;
    --threads) THREADS=${2:-}; shift 2 ;;
    --tls) TLS=1; shift ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) corral_die "unknown option '$1' (see --help)" ;;
    *) BINS+=("$1"); shift ;;
  esac
done
[[ ${ROUNDS} =~ ^[1-9][0-9]*$ ]] || corral_die "--rounds must be a positive integer, got '${ROUNDS}'"
[[ ${THREADS} =~ ^[1-9][0-9]*$ ]] || corral_die "--threads must be a positive integer, got '${THREADS}'"
((${#BINS[@]} <= 2)) || corral_die "at most two corral binaries, got ${#BINS[@]}"
((${#BINS[@]} >= 1)) || BINS=("${ROOT_DIR}/build/cache-server/corral-server")
for bin in "${BINS[@]}"; do
  [[ -x ${bin} ]] || corral_die "no executable ${bin}: build corral-server first"
done

KEYS=100000
WORK_DIR=""
REDIS_STARTED=0
USE_PERF=1
declare -A PORT=()    # target → RESP port
declare -A PID=()     # target → server pid
declare -A CPU=()     # "target test" → space-separated microseconds per request, one per round
declare -A RATE=()    # "target test" → space-separated requests/s, one per round
declare -A CORRAL=()  # corral target → its pid, to stop
TARGETS=(redis corral)
((${#BINS[@]} == 1)) || TARGETS+=(corral-other)
TESTS=("GET" "SET" "GET -P 16" "SET -P 16")

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$? name
  trap - EXIT INT TERM
  for name in "${!CORRAL[@]}"; do
    CORRAL_SERVER_PID=${CORRAL[${name}]}
    corral_server_stop
  done
  if ((REDIS_STARTED)); then "${DEPLOY_DIR}/redis-local.sh" stop >/dev/null || true; fi
  [[ -z ${WORK_DIR} ]] || rm -rf "${WORK_DIR}"
  exit "${status}"
}

# start_corral NAME BIN: a corral-server with no database (plain SET/GET keys).
start_corral() {
  local name=$1 bin=$2
  RESP_PORT=$(corral_free_port)
  HTTP_PORT=$(corral_free_port)
  local tls_listen="" tls_section="" tls_port=""
  if ((TLS)); then
    tls_port=$(corral_free_port)
    tls_listen=", \"resp_tls\": \"127.0.0.1:${tls_port}\""
    tls_section=", \"tls\": { \"cert_file\": \"${WORK_DIR}/server.crt\","
    tls_section+=" \"key_file\": \"${WORK_DIR}/server.key\" }"
  fi
  cat >"${WORK_DIR}/${name}.json" <<EOF
{ "listen": { "resp": "127.0.0.1:${RESP_PORT}", "http": "127.0.0.1:${HTTP_PORT}"${tls_listen} },
  "threads": ${THREADS}, "memory": { "max_bytes": 1073741824 }, "log_level": "warn"${tls_section} }
EOF
  corral_server_start "${bin}" "${WORK_DIR}/${name}.json" "${WORK_DIR}/${name}.log"
  PORT[${name}]=${tls_port:-${RESP_PORT}}
  PID[${name}]=${CORRAL_SERVER_PID}
  CORRAL[${name}]=${CORRAL_SERVER_PID}
}

# The process's user + system CPU in clock ticks (the fallback when perf cannot count).
proc_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# measure TARGET TEST: runs redis-benchmark against TARGET while counting the server's CPU;
# prints "<microseconds of server CPU per request> <requests/s>".
measure() {
  local target=$1 test=$2 command=${2%% *} pipeline=1 n=200000 pid=${PID[$1]}
  if [[ ${test} == *"-P 16" ]]; then
    pipeline=16
    n=1000000
  fi
  local perf_out=${WORK_DIR}/perf.out perf_pid="" before=0 rate cpu_ms
  if ((USE_PERF)); then
    perf stat -e task-clock -x, -o "${perf_out}" -p "${pid}" &
    perf_pid=$!
    sleep 0.2  # let perf attach before the first request
  else
    before=$(proc_ticks "${pid}")
  fi
  rate=$(redis-benchmark "${TLS_ARGS[@]}" -h 127.0.0.1 -p "${PORT[${target}]}" -c 50 -r "${KEYS}" -n "${n}" \
    -P "${pipeline}" -t "${command,,}" --csv | awk -F'"' 'NR == 2 { printf "%d\n", $4 }')
  if ((USE_PERF)); then
    kill -INT "${perf_pid}"
    wait "${perf_pid}" || true
    cpu_ms=$(awk -F, '$3 == "task-clock" { print $1 }' "${perf_out}")
  else
    cpu_ms=$((($(proc_ticks "${pid}") - before) * 1000 / $(getconf CLK_TCK)))
  fi
  [[ -n ${cpu_ms} ]] || corral_die "no task-clock count for ${target} ${test}: $(cat "${perf_out}")"
  awk -v ms="${cpu_ms}" -v n="${n}" -v r="${rate}" 'BEGIN { printf "%.3f %d\n", ms * 1000 / n, r }'
}

median() {
  tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# preload PORT: SETs key:000000000000 .. key:000000099999 (redis-benchmark's -r key names) to
# 3-byte values, so that every GET of the benchmark is a hit.
preload() {
  awk -v keys="${KEYS}" 'BEGIN {
    for (i = 0; i < keys; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n", i }' |
    redis-cli "${TLS_ARGS[@]}" -h 127.0.0.1 -p "$1" --pipe >/dev/null
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if ! perf stat -e task-clock -x, -o /dev/null true 2>/dev/null; then
    USE_PERF=0
    echo "perf cannot count task-clock here: using /proc/PID/stat utime+stime (10 ms ticks)" >&2
  fi
  WORK_DIR=$(mktemp -d /tmp/corral-cpu.XXXXXX)
  CORRAL_REDIS_DIR=${WORK_DIR}/redis
  CORRAL_REDIS_PORT=$(corral_free_port)
  export CORRAL_REDIS_DIR CORRAL_REDIS_PORT
  local redis_tls_port=""
  if ((TLS)); then
    # One self-signed certificate for 127.0.0.1, served by every target.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
      -keyout "${WORK_DIR}/server.key" -out "${WORK_DIR}/server.crt" -subj "/CN=127.0.0.1" \
      -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
    TLS_ARGS=(--tls --cacert "${WORK_DIR}/server.crt")
    redis_tls_port=$(corral_free_port)
    CORRAL_REDIS_EXTRA_ARGS="--tls-port ${redis_tls_port} --tls-cert-file ${WORK_DIR}/server.crt"
    CORRAL_REDIS_EXTRA_ARGS+=" --tls-key-file ${WORK_DIR}/server.key --tls-auth-clients no"
    export CORRAL_REDIS_EXTRA_ARGS
  fi
  "${DEPLOY_DIR}/redis-local.sh" start >/dev/null
  REDIS_STARTED=1
  PORT[redis]=${redis_tls_port:-${CORRAL_REDIS_PORT}}
  PID[redis]=$(cat "${CORRAL_REDIS_DIR}/redis.pid")
  start_corral corral "${BINS[0]}"
  ((${#BINS[@]} == 1)) || start_corral corral-other "${BINS[1]}"
  local target
  for target in "${TARGETS[@]}"; do preload "${PORT[${target}]}"; done

  local round i test line result
  for ((round = 0; round < ROUNDS; round++)); do
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do
      target=${TARGETS[$(((i + round) % ${#TARGETS[@]}))]}
      line="round $((round + 1)) ${target}:"
      for test in "${TESTS[@]}"; do
        result=$(measure "${target}" "${test}")
        CPU["${target} ${test}"]+=" ${result% *}"
        RATE["${target} ${test}"]+=" ${result#* }"
        line+="  ${test} ${result% *} us (${result#* }/s)"
      done
      echo "${line}" >&2
    done
  done

  printf '\nserver CPU per request in microseconds (ratio to redis-server), median of %d rounds;\n' \
    "${ROUNDS}"
  printf 'redis-benchmark -c 50 -r %d, -n 200000 (-P 16: -n 1000000); corral threads %d%s\n' \
    "${KEYS}" "${THREADS}" "$( ((TLS)) && echo '; every target over TLS')"
  printf '%-13s' target
  for test in "${TESTS[@]}"; do printf ' %16s' "${test}"; done
  printf '\n'
  local m base
  for target in "${TARGETS[@]}"; do
    printf '%-13s' "${target}"
    for test in "${TESTS[@]}"; do
      m=$(median <<<"${CPU["${target} ${test}"]}")
      base=$(median <<<"${CPU["redis ${test}"]}")
      if [[ ${target} == redis ]]; then
        printf ' %16s' "${m}"
      else
        printf ' %8s (%4.2fx)' "${m}" "$(awk -v m="${m}" -v b="${base}" 'BEGIN { print m / b }')"
      fi
    done
    printf '\n'
  done
  if ((${#BINS[@]} > 1)); then
    # On a machine whose speed shifts between rounds, the ratio of the two binaries measured
    # side by side in each round is steadier than the ratio of their medians.
    printf '%-13s' "new/other"
    for test in "${TESTS[@]}"; do
      m=$(paste -d' ' <(tr ' ' '\n' <<<"${CPU["corral ${test}"]}" | sed '/^$/d') \
        <(tr ' ' '\n' <<<"${CPU["corral-other ${test}"]}" | sed '/^$/d') |
        awk '{ printf "%.4f ", $1 / $2 }' | median)
      printf ' %16s' "${m}x"
    done
    printf '   (median of the per-round ratios)\n'
  fi
  printf '\ncorral: %s\n' "${BINS[0]}"
  ((${#BINS[@]} == 1)) || printf 'corral-other: %s\n' "${BINS[1]}"
}

main "$@"
