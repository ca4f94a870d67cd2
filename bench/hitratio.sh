#!/usr/bin/env bash
# The hit-ratio table of README.md ("Eviction: hit ratios"): bench/hitratio.cc's synthetic traces
# replayed through lease::Store's policies (tinylfu, clock) in-process and through a redis-server
# of its own (allkeys-lru, allkeys-lfu) over RESP, next to the static optimum. Takes ~15 minutes
# (Redis's round trips dominate); --scale 0.1 makes every trace ten times smaller.
#
# Usage: bench/hitratio.sh [--no-redis] [--scale F] [--only SUBSTRING]
# Environment: CORRAL_BUILD_DIR (default build; builds corral_hitratio there). Needs redis-server.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/lib.sh
source "${ROOT_DIR}/deploy/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
REDIS=1
ARGS=()
while (($#)); do
  case $1 in
    --no-redis) REDIS=0; shift ;;
    --scale | --only)
      (($# >= 2)) || corral_die "$1 needs a value"
      ARGS+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) corral_die "unknown argument '$1' (see --help)" ;;
  esac
done

cmake --build "${BUILD_DIR}" --target corral_hitratio >/dev/null
REDIS_PID=""
WORK_DIR=$(mktemp -d)
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n ${REDIS_PID} ]]; then
    kill "${REDIS_PID}" 2>/dev/null || true
    wait "${REDIS_PID}" 2>/dev/null || true
  fi
  rm -rf "${WORK_DIR}"
  exit "${status}"
}
trap cleanup EXIT INT TERM

if ((REDIS)); then
  command -v redis-server >/dev/null || corral_die "redis-server not found (or pass --no-redis)"
  PORT=$(corral_free_port)
  # No persistence; defaults otherwise (maxmemory-samples 5, lfu-log-factor 10, lfu-decay-time 1).
  redis-server --port "${PORT}" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "${WORK_DIR}" --logfile "${WORK_DIR}/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 100); do
    redis-cli -p "${PORT}" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "${PORT}" ping >/dev/null || corral_die "redis-server did not start"
  ARGS+=(--redis "127.0.0.1:${PORT}")
fi
"${BUILD_DIR}/bench/corral_hitratio" "${ARGS[@]}"
