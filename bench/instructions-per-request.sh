#!/usr/bin/env bash
# Instructions per request on the hit path, counted instead of timed (README "Hit path"): each
# corral binary runs under callgrind (`threads` 1) while redis-benchmark sends N1 and then, in a
# second run, N2 requests of each test over one connection to KEYS present keys picked at random
# (redis-benchmark -r; with KEYS=1, one key over and over); the difference of
# the two runs' totals, divided by N2 - N1, is what one request costs, start-up and shutdown
# cancelled out. Counts do not depend on the machine's load, so two binaries compare exactly where
# bench/cpu-per-request.sh's timings cannot resolve a few percent; what they miss is cycles (an
# atomic or a cache miss counts as one instruction). Work done per wall-clock tick (timers) is
# charged to requests as the runs' lengths differ: compare the per-function lines with that in mind.
#
# Usage: bench/instructions-per-request.sh [--functions N] CORRAL_BIN [OTHER_CORRAL_BIN]
#   --functions N: also the N functions whose counts per request differ most between the two
#   binaries. Environment: N1 (default 10000), N2 (default 30000), TESTS (default "get set"),
#   KEYS (default 100000: W-TinyLFU's sketch counters of one key read over and over sit at their
#   maximum and its count returns early, which hid the policy's cost), PIPELINE (default 1).
# Needs valgrind (callgrind_annotate), redis-benchmark and redis-cli. Builds nothing; takes a few
# minutes per binary.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/lib.sh
source "${ROOT_DIR}/deploy/lib.sh"

FUNCTIONS=0
BINS=()
while (($#)); do
  case $1 in
    --functions) FUNCTIONS=${2:-}; shift 2 ;;
    -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) corral_die "unknown option '$1' (see --help)" ;;
    *) BINS+=("$1"); shift ;;
  esac
done
((${#BINS[@]} >= 1 && ${#BINS[@]} <= 2)) || corral_die "one or two corral binaries (see --help)"
[[ ${FUNCTIONS} =~ ^[0-9]+$ ]] || corral_die "--functions must be a number, got '${FUNCTIONS}'"
N1=${N1:-10000}
N2=${N2:-30000}
KEYS=${KEYS:-100000}
PIPELINE=${PIPELINE:-1}
[[ ${KEYS} =~ ^[1-9][0-9]*$ ]] || corral_die "KEYS must be a positive integer, got '${KEYS}'"
[[ ${PIPELINE} =~ ^[1-9][0-9]*$ ]] || corral_die "PIPELINE must be a positive integer, got '${PIPELINE}'"
read -r -a TESTS <<<"${TESTS:-get set}"
for tool in valgrind callgrind_annotate redis-benchmark redis-cli; do
  command -v "${tool}" >/dev/null || corral_die "${tool} is not installed"
done
WORK_DIR=$(mktemp -d /tmp/corral-instr.XXXXXX)
trap 'rm -rf "${WORK_DIR}"' EXIT

# profile BIN OUT N TEST: callgrind output of BIN serving N requests of TEST.
profile() {
  local bin=$1 out=$2 n=$3 test=$4 port pid
  port=$(corral_free_port)
  valgrind --tool=callgrind --callgrind-out-file="${out}" "${bin}" --resp "127.0.0.1:${port}" \
    --http 127.0.0.1:0 --threads 1 --log-level error >"${out}.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    redis-cli -p "${port}" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  # redis-benchmark's -r key names, key:000000000000 onwards, with 3-byte values.
  awk -v keys="${KEYS}" 'BEGIN {
    for (i = 0; i < keys; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n", i }' |
    redis-cli -p "${port}" --pipe >/dev/null
  redis-benchmark -p "${port}" -c 1 -r "${KEYS}" -P "${PIPELINE}" -n "${n}" -t "${test}" -q >/dev/null
  kill -INT "${pid}"
  wait "${pid}" || true
}

# functions OUT: "count<TAB>function" lines, self cost of each function.
functions() {
  callgrind_annotate --tree=none --inclusive=no --auto=no --show-percs=no --threshold=100 "$1" |
    awk '/^ *[0-9,]+ +[^ ]/ && !/PROGRAM TOTALS/ {
      n = $1; gsub(",", "", n); $1 = ""; sub(/^ +/, ""); sub(/ \[[^]]*\]$/, "");
      sub(/^[^ (]*\.(cc|h|hpp|ipp|S|c):/, ""); print n "\t" $0 }'
}

total() {
  callgrind_annotate --auto=no "$1" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

declare -A PER=()
for test in "${TESTS[@]}"; do
  for i in "${!BINS[@]}"; do
    profile "${BINS[$i]}" "${WORK_DIR}/${i}-${test}-1" "${N1}" "${test}"
    profile "${BINS[$i]}" "${WORK_DIR}/${i}-${test}-2" "${N2}" "${test}"
    PER[${i} ${test}]=$(awk -v a="$(total "${WORK_DIR}/${i}-${test}-1")" \
      -v b="$(total "${WORK_DIR}/${i}-${test}-2")" -v n="$((N2 - N1))" \
      'BEGIN { printf "%.0f", (b - a) / n }')
  done
done

printf 'instructions per request (callgrind, one connection, -r %d -P %d, (%d - %d requests) / %d)\n' \
  "${KEYS}" "${PIPELINE}" "${N2}" "${N1}" "$((N2 - N1))"
for test in "${TESTS[@]}"; do
  line=$(printf '%-4s %s %s' "${test^^}" "${BINS[0]}" "${PER[0 ${test}]}")
  if ((${#BINS[@]} == 2)); then
    line+=$(printf '   %s %s   new - other %+d' "${BINS[1]}" "${PER[1 ${test}]}" \
      "$((PER[0 ${test}] - PER[1 ${test}]))")
  fi
  echo "${line}"
done

if ((FUNCTIONS > 0 && ${#BINS[@]} == 2)); then
  for test in "${TESTS[@]}"; do
    printf '\n%s: per request, first binary, other, difference (largest differences)\n' "${test^^}"
    for i in 0 1; do
      for r in 1 2; do functions "${WORK_DIR}/${i}-${test}-${r}" >"${WORK_DIR}/f-${i}-${r}"; done
    done
    awk -F'\t' -v n="$((N2 - N1))" '
      { key = $2; v[FILENAME, key] += $1; keys[key] = 1 }
      END {
        for (k in keys) {
          a = (v[ARGV[2], k] - v[ARGV[1], k]) / n; b = (v[ARGV[4], k] - v[ARGV[3], k]) / n
          if (a != b) printf "%9.1f %9.1f %+8.1f  %s\n", a, b, a - b, substr(k, 1, 110)
        }
      }' "${WORK_DIR}/f-0-1" "${WORK_DIR}/f-0-2" "${WORK_DIR}/f-1-1" "${WORK_DIR}/f-1-2" |
      sort -t' ' -k3 | awk '{ d = $3; sub(/^[+-]/, "", d); print d "\t" $0 }' | sort -rn |
      head -n "${FUNCTIONS}" | cut -f2-
  done
fi
