#!/usr/bin/env bash
# Server CPU per request, corral vs redis-server (README "Hit path"): `perf stat -e task-clock`
# on the server process while redis-benchmark runs GET, SET, GET -P 16 and SET -P 16; the targets
# alternate within each round (the order rotates) and the medians of ROUNDS rounds are compared
# (with a second binary, also the median of the two binaries' per-round ratios).
# CPU per request, unlike requests/s, does not depend on how much of the two cores the benchmark
# client took. A second corral binary (e.g. the build before a change) runs as a third target.
#
# Usage: bench/cpu-per-request.sh [--rounds N] [--threads T] [--tls] [--pin] [--clients C]
#                                 [--requests N] [--side-by-side S] [CORRAL_BIN [OTHER_CORRAL_BIN]]
#   CORRAL_BIN default build/cache-server/corral-server; --rounds default 5; --threads (corral's
#   `threads`) default 1, as Redis serves commands on one thread. --tls: every target is reached
#   over TLS (Redis's tls-port, corral's listen.resp_tls; redis-benchmark --tls) with a
#   certificate made by openssl for the run. --pin: every server (all its threads) runs on CPU 1
#   and redis-benchmark on CPU 0 (taskset), so that the two never share a core; on a 2-core
#   machine this keeps them from preempting each other. --clients: redis-benchmark's -c (default
#   50); with 1 every request is one read, one reply and one wait, so no round batches requests
#   differently from another (on a 2-core VM this did not narrow the spread: the machine's own).
#   --requests: -n of the unpipelined tests (default 200000; -P 16 runs five times as many).
#   --side-by-side SECONDS (needs two corral binaries): the two corral targets are loaded at the
#   same time, each by its own redis-benchmark, and both servers' CPU and commands
#   (INFO total_commands_processed) are counted over the same SECONDS-long window; a slow or fast
#   moment of the machine then falls on both alike (redis still runs alone, for scale). With
#   --pin both servers share CPU 1. Builds nothing.
# Within a round each test runs against every target back to back (the order rotates), so that
# the two corral binaries of a pair are measured seconds apart.
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
PIN=0
CLIENTS=50
REQUESTS=200000
SIDE_BY_SIDE=0
BENCH_PREFIX=()  # taskset -c 0 with --pin
TLS_ARGS=()  # --tls --cacert CERT for redis-benchmark and redis-cli
BINS=()
while (($#)); do
  case $1 in
    --rounds) ROUNDS=${2:-}; shift 2 ;;
    --threads) THREADS=${2:-}; shift 2 ;;
    --tls) TLS=1; shift ;;
    --pin) PIN=1; shift ;;
    --clients) CLIENTS=${2:-}; shift 2 ;;
    --requests) REQUESTS=${2:-}; shift 2 ;;
    --side-by-side) SIDE_BY_SIDE=${2:-}; shift 2 ;;
    -h | --help) sed -n '2,28p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) corral_die "unknown option '$1' (see --help)" ;;
    *) BINS+=("$1"); shift ;;
  esac
done
[[ ${ROUNDS} =~ ^[1-9][0-9]*$ ]] || corral_die "--rounds must be a positive integer, got '${ROUNDS}'"
[[ ${THREADS} =~ ^[1-9][0-9]*$ ]] || corral_die "--threads must be a positive integer, got '${THREADS}'"
[[ ${CLIENTS} =~ ^[1-9][0-9]*$ ]] || corral_die "--clients must be a positive integer, got '${CLIENTS}'"
[[ ${REQUESTS} =~ ^[1-9][0-9]*$ ]] || corral_die "--requests must be a positive integer, got '${REQUESTS}'"
[[ ${SIDE_BY_SIDE} =~ ^[0-9]+$ ]] || corral_die "--side-by-side takes seconds, got '${SIDE_BY_SIDE}'"
((SIDE_BY_SIDE == 0 || ${#BINS[@]} == 2)) || corral_die "--side-by-side needs two corral binaries"
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
  local target=$1 test=$2 command=${2%% *} pipeline=1 n=${REQUESTS} pid=${PID[$1]}
  if [[ ${test} == *"-P 16" ]]; then
    pipeline=16
    n=$((5 * REQUESTS))
  fi
  local perf_out=${WORK_DIR}/perf.out perf_pid="" before=0 rate cpu_ms
  if ((USE_PERF)); then
    perf stat -e task-clock -x, -o "${perf_out}" -p "${pid}" &
    perf_pid=$!
    sleep 0.2  # let perf attach before the first request
  else
    before=$(proc_ticks "${pid}")
  fi
  rate=$("${BENCH_PREFIX[@]}" redis-benchmark "${TLS_ARGS[@]}" -h 127.0.0.1 -p "${PORT[${target}]}" -c "${CLIENTS}" -r "${KEYS}" -n "${n}" \
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

# The commands a server has run (INFO stats total_commands_processed).
commands_of() {
  redis-cli "${TLS_ARGS[@]}" -h 127.0.0.1 -p "$1" info stats |
    awk -F: '$1 == "total_commands_processed" { print $2 + 0 }'
}

# measure_pair TEST: loads corral and corral-other at once (one redis-benchmark each, more
# requests than the window needs) and counts, over the same SIDE_BY_SIDE seconds, each server's
# CPU and commands; prints "<us per request corral> <req/s corral> <us other> <req/s other>".
measure_pair() {
  local test=$1 command=${1%% *} pipeline=1 t out=""
  [[ ${test} != *"-P 16" ]] || pipeline=16
  local -A bench_pid=() perf_pid=() before=()
  for t in corral corral-other; do
    "${BENCH_PREFIX[@]}" redis-benchmark "${TLS_ARGS[@]}" -h 127.0.0.1 -p "${PORT[${t}]}" \
      -c "${CLIENTS}" -r "${KEYS}" -n 2000000000 -P "${pipeline}" -t "${command,,}" -q \
      >/dev/null 2>&1 &
    bench_pid[${t}]=$!
  done
  sleep 1  # both loads running
  for t in corral corral-other; do
    perf stat -e task-clock -x, -o "${WORK_DIR}/perf-${t}.out" -p "${PID[${t}]}" &
    perf_pid[${t}]=$!
  done
  sleep 0.2
  for t in corral corral-other; do before[${t}]=$(commands_of "${PORT[${t}]}"); done
  sleep "${SIDE_BY_SIDE}"
  local -A done_count=()
  for t in corral corral-other; do done_count[${t}]=$(commands_of "${PORT[${t}]}"); done
  for t in corral corral-other; do kill -INT "${perf_pid[${t}]}"; done
  for t in corral corral-other; do wait "${perf_pid[${t}]}" || true; done
  for t in corral corral-other; do kill "${bench_pid[${t}]}" 2>/dev/null || true; done
  for t in corral corral-other; do wait "${bench_pid[${t}]}" 2>/dev/null || true; done
  for t in corral corral-other; do
    local cpu_ms n
    cpu_ms=$(awk -F, '$3 == "task-clock" { print $1 }' "${WORK_DIR}/perf-${t}.out")
    n=$((done_count[${t}] - before[${t}]))
    ((n > 0)) || corral_die "${t} ran no commands in the window"
    # perf's window opens 0.2 s before the first count and closes just after the second: a
    # fraction of a percent more CPU than commands, alike for both.
    out+=$(awk -v ms="${cpu_ms}" -v n="${n}" -v s="${SIDE_BY_SIDE}" \
      'BEGIN { printf "%.3f %d ", ms * 1000 / n, n / s }')
  done
  echo "${out% }"
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
  if ((PIN)); then
    command -v taskset >/dev/null || corral_die "--pin needs taskset (util-linux)"
    (($(nproc) >= 2)) || corral_die "--pin needs two CPUs, this machine has $(nproc)"
    for target in "${TARGETS[@]}"; do taskset -a -p -c 1 "${PID[${target}]}" >/dev/null; done
    BENCH_PREFIX=(taskset -c 0)
  fi

  local round i test line result pair
  for ((round = 0; round < ROUNDS; round++)); do
    for test in "${TESTS[@]}"; do
      line="round $((round + 1)) ${test}:"
      if ((SIDE_BY_SIDE)); then
        read -r -a pair <<<"$(measure_pair "${test}")"
        CPU["corral ${test}"]+=" ${pair[0]}"
        RATE["corral ${test}"]+=" ${pair[1]}"
        CPU["corral-other ${test}"]+=" ${pair[2]}"
        RATE["corral-other ${test}"]+=" ${pair[3]}"
        line+="  corral ${pair[0]} us (${pair[1]}/s)  corral-other ${pair[2]} us (${pair[3]}/s)"
      fi
      for ((i = 0; i < ${#TARGETS[@]}; i++)); do
        target=${TARGETS[$(((i + round) % ${#TARGETS[@]}))]}
        ((SIDE_BY_SIDE == 0)) || [[ ${target} == redis ]] || continue
        result=$(measure "${target}" "${test}")
        CPU["${target} ${test}"]+=" ${result% *}"
        RATE["${target} ${test}"]+=" ${result#* }"
        line+="  ${target} ${result% *} us (${result#* }/s)"
      done
      echo "${line}" >&2
    done
  done

  printf '\nserver CPU per request in microseconds (ratio to redis-server), median of %d rounds;\n' \
    "${ROUNDS}"
  printf 'redis-benchmark -c %d -r %d, -n %d (-P 16: -n %d); corral threads %d%s%s\n' \
    "${CLIENTS}" "${KEYS}" "${REQUESTS}" "$((5 * REQUESTS))" "${THREADS}" "$( ((TLS)) && echo '; every target over TLS')" \
    "$( ((PIN)) && echo '; servers on CPU 1, redis-benchmark on CPU 0')"
  ((SIDE_BY_SIDE == 0)) ||
    printf 'the two corral binaries loaded at once, counted over the same %d s window each time\n' \
      "${SIDE_BY_SIDE}"
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
