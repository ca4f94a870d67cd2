#!/usr/bin/env bash
# A rolling restart of 3 corral nodes under steady corral-herd traffic (issue 12 "Done means"):
# goodput over the restart and the database's query rate during it next to its steady rate, with
# the nodes sharing a Redis tier (default) or on their own (--no-tier).
#
# Usage: bench/rolling-restart.sh [--no-tier] [--no-readyz] [--keys N] [--rate R] [--zipf S]
#                                 [--max-inflight-loads N] [OUT_DIR]
# (OUT_DIR default: a new directory under /tmp.) Writes OUT_DIR/herd.txt (the printed table),
# results.json, results.csv, rolling.svg, per-second.csv (DB queries/s and answers/s each second),
# restarts.txt (per node: SIGTERM to exit, start to /readyz 200) and corral-1.json (node 1's config).
# Environment: CORRAL_BUILD_DIR (default build). About 2 minutes; needs what
# deploy/install-deps.sh installs.
#
# What it does: starts PostgreSQL (primary + 2 replicas), Redis (unless --no-tier) and 3
# corral-servers (drain grace 1 s), then runs corral-herd --scenario rolling: every key is loaded
# once on every node, then steady traffic (uniform over the keys, TTL 10 minutes: no key expires
# in the run) is spread over the nodes; after --rolling-warm seconds corral-herd runs this script's
# --restart-all step, which restarts node 1 (SIGTERM, wait for the exit, start, wait for /readyz
# 200), then node 2, then node 3; the traffic goes on for --rolling-after seconds after it.
# The clients follow the nodes' /readyz as behind a load balancer (corral-herd --corral-http): a
# client leaves a node that is not ready and returns to its own once it is ready; a client whose
# node closes its connection or refuses it moves to the next node (bench/herd/README.md "Rolling
# restart" says how requests are counted). --no-readyz: the clients ignore /readyz and move only
# when their node closes or refuses them.
#
# --max-inflight-loads N sets the namespace's max_inflight_loads (default 64, corral's own): a
# restarted node's L1 misses hold a load slot while they read L2, so the refill can be shed.
#
# Exit status: 1 if goodput (answers that are right, over requests) is under 99 %, any answer is
# wrong, the restart costs more than one query per key per node (per key with the tier), a
# restart step fails or a stopped node did not exit 0. Not a timing check.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY_DIR=${ROOT_DIR}/deploy
SELF=${ROOT_DIR}/bench/rolling-restart.sh
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
SERVER_BIN=${BUILD_DIR}/cache-server/corral-server
HERD_BIN=${BUILD_DIR}/bench/corral-herd
NODES=3
TIER=1
PROBE=1
KEYS=10000
RATE=3000
ZIPF=0
MAX_INFLIGHT=64 # corral's default
OUT_DIR=""
# shellcheck disable=SC2016  # $1 is the query's parameter, not the shell's
QUERY='SELECT name FROM users WHERE id = $1::bigint'
TTL_MS=600000

WORK_DIR=""
REDIS_STARTED=0
ORIGINAL_PIDS=()

usage() {
  echo "usage: ${0##*/} [--no-tier] [--keys N] [--rate R] [--zipf S] [--max-inflight-loads N]" \
    "[OUT_DIR]" >&2
  exit 2
}

# ---- the restart step (run by corral-herd: --restart-all WORK_DIR) ------------------------------

# node_pid I: the pid of node I's current process.
node_pid() { cat "${WORK_DIR}/node-$1.pid"; }

node_gone() { ! corral_process_is corral-server "$1"; }

node_ready() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "${WORK_DIR}/node-$1.http")/readyz") == 200 ]]
}

now_s() { date +%s.%N; }

# snapshot_metrics NAME: every node's /metrics into WORK_DIR/diag (copied to OUT_DIR/diag).
snapshot_metrics() {
  local j
  mkdir -p "${WORK_DIR}/diag"
  for ((j = 1; j <= $(cat "${WORK_DIR}/nodes"); j++)); do
    curl -s -m 2 "http://127.0.0.1:$(cat "${WORK_DIR}/node-${j}.http")/metrics" \
      >"${WORK_DIR}/diag/$1-node-${j}.txt" || true
  done
}

# restart_node I: SIGTERM, wait for the exit (its drain), start it again, wait for /readyz 200.
# Appends one line to WORK_DIR/restarts.txt; times are from the restart command's start.
restart_node() {
  local i=$1 pid t0 t_exit t_ready
  pid=$(node_pid "${i}")
  snapshot_metrics "before-restart-${i}" & # in the background: /metrics is slow on a busy node
  SNAPSHOT_PIDS+=($!)
  t0=$(now_s)
  kill -TERM "${pid}"
  corral_wait_until 60 "node ${i} to exit after SIGTERM" node_gone "${pid}" || return 1
  t_exit=$(now_s)
  # setsid, no inherited descriptors: the node outlives this step and must not hold corral-herd's
  # output open.
  setsid "${SERVER_BIN}" --config "${WORK_DIR}/corral-${i}.json" \
    </dev/null >>"${WORK_DIR}/corral-${i}.log" 2>&1 &
  echo $! >"${WORK_DIR}/node-${i}.pid"
  corral_wait_until 60 "node ${i} to be ready again" node_ready "${i}" || return 1
  t_ready=$(now_s)
  awk -v i="${i}" -v s="${RESTART_T0}" -v a="${t0}" -v b="${t_exit}" -v c="${t_ready}" 'BEGIN {
    printf "node %d: SIGTERM at +%.2f s; SIGTERM to exit %.2f s, start to /readyz 200 %.2f s, " \
      "total %.2f s\n", i, a - s, b - a, c - b, c - a }' |
    tee -a "${WORK_DIR}/restarts.txt" >&2
}

restart_all() {
  WORK_DIR=$1
  RESTART_T0=$(now_s)
  SNAPSHOT_PIDS=()
  local i
  for ((i = 1; i <= $(cat "${WORK_DIR}/nodes"); i++)); do
    restart_node "${i}" || return 1
  done
  wait "${SNAPSHOT_PIDS[@]}" # only those: a bare wait would wait for the restarted nodes
  awk -v s="${RESTART_T0}" -v e="$(now_s)" 'BEGIN { printf "all restarted at +%.2f s\n", e - s }' |
    tee -a "${WORK_DIR}/restarts.txt" >&2
}

# ---- the run ------------------------------------------------------------------------------------

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n ${WORK_DIR} ]]; then
    local i pid
    for ((i = 1; i <= NODES; i++)); do
      [[ -f ${WORK_DIR}/node-${i}.pid ]] || continue
      pid=$(cat "${WORK_DIR}/node-${i}.pid")
      if corral_process_is corral-server "${pid}"; then
        kill -TERM "${pid}" 2>/dev/null || true
        corral_wait_until 15 "node ${i} to exit" node_gone "${pid}" ||
          kill -KILL "${pid}" 2>/dev/null || true
      fi
    done
    # The nodes' logs and metrics snapshots, for a run that needs explaining.
    mkdir -p "${OUT_DIR}/diag"
    cp "${WORK_DIR}"/corral-*.log "${OUT_DIR}/diag/" 2>/dev/null || true
    cp -r "${WORK_DIR}/diag/." "${OUT_DIR}/diag/" 2>/dev/null || true
    if ((REDIS_STARTED)); then "${DEPLOY_DIR}/redis-local.sh" stop >/dev/null || true; fi
    "${DEPLOY_DIR}/pg-local.sh" stop >/dev/null || true
    rm -rf "${WORK_DIR}"
  fi
  exit "${status}"
}

parse_args() {
  while (($# > 0)); do
    case "$1" in
      --no-tier)
        TIER=0
        shift
        ;;
      --no-readyz)
        PROBE=0
        shift
        ;;
      --keys | --rate | --zipf | --max-inflight-loads)
        (($# >= 2)) || usage
        [[ $2 =~ ^[0-9]+(\.[0-9]+)?$ ]] || corral_die "$1: expected a number, got '$2'"
        case "$1" in
          --keys) KEYS=$2 ;;
          --rate) RATE=$2 ;;
          --zipf) ZIPF=$2 ;;
          --max-inflight-loads) MAX_INFLIGHT=$2 ;;
        esac
        shift 2
        ;;
      -h | --help) usage ;;
      -*) corral_die "unknown option '$1'" ;;
      *)
        [[ -z ${OUT_DIR} ]] || usage
        OUT_DIR=$1
        shift
        ;;
    esac
  done
  OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/corral-rolling.XXXXXX)}
  [[ ${OUT_DIR} == /* ]] || OUT_DIR=${PWD}/${OUT_DIR}
}

json_string() {
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"
}

# write_config FILE RESP_PORT HTTP_PORT
write_config() {
  local redis=""
  if ((TIER)); then
    redis="\"redis\": { \"nodes\": [\"127.0.0.1:${CORRAL_REDIS_PORT}\"], \"prefix\": \"roll:\" },"
  fi
  cat >"$1" <<EOF
{
  "listen": { "resp": "127.0.0.1:$2", "http": "127.0.0.1:$3" },
  "postgres": {
    "primary": "$(corral_conninfo "${CORRAL_PG_PORT}")",
    "replicas": ["$(corral_conninfo $((CORRAL_PG_PORT + 1)))",
                 "$(corral_conninfo $((CORRAL_PG_PORT + 2)))"],
    "pools": { "default": { "connections": 16 } }
  },
  "namespaces": { "roll": { "query": $(json_string "${QUERY}"), "ttl_ms": ${TTL_MS},
                            "max_inflight_loads": ${MAX_INFLIGHT} } },
  ${redis}
  "shutdown": { "drain_grace_ms": 1000, "timeout_ms": 5000 }
}
EOF
}

# Per-second DB queries/s and answers/s from results.json, with the restart window marked.
per_second_csv() {
  python3 - "$1" <<'PY'
import json, math, sys
run = next(r for r in json.load(open(sys.argv[1]))["runs"] if r["scenario"] == "rolling")
x = run["extra"]
start, end = x.get("restart_from_s", -1), x.get("restart_from_s", -1) + x.get("restart_s", 0)
db, good = {}, {}
prev = 0.0
for t, qps, _ in run["db_series"]["rows"]:
    # spread each interval's queries over the seconds it covers
    lo = prev
    while lo < t - 1e-9:
        hi = min(t, math.floor(lo) + 1)
        db[math.floor(lo)] = db.get(math.floor(lo), 0) + qps * (hi - lo)
        lo = hi
    prev = t
for t, _, g in run["client_series"]["rows"]:
    if g >= 0:
        good[math.floor(t)] = good.get(math.floor(t), 0) + g * 0.1
print("second,db_queries,answers,restarting")
for s in range(0, int(max(list(db) + list(good) + [0])) + 1):
    print(f"{s},{db.get(s, 0):.0f},{good.get(s, 0):.0f},{int(s + 1 > start and s < end)}")
PY
}

main() {
  if [[ ${1:-} == --restart-all ]]; then
    restart_all "$2"
    return
  fi
  parse_args "$@"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "${OUT_DIR}"
  [[ -x ${SERVER_BIN} && -x ${HERD_BIN} ]] ||
    corral_die "build corral-server and corral-herd first (cmake --build build --target corral-server corral-herd)"

  WORK_DIR=$(mktemp -d /tmp/corral-rolling-run.XXXXXX)
  chmod 755 "${WORK_DIR}" # the postgres user must reach its data directory inside
  echo "${NODES}" >"${WORK_DIR}/nodes"
  CORRAL_PG_DIR=${WORK_DIR}/pg
  CORRAL_PG_PORT=$(corral_free_port_range 3)
  export CORRAL_PG_DIR CORRAL_PG_PORT
  "${DEPLOY_DIR}/pg-local.sh" start >/dev/null
  eval "$("${DEPLOY_DIR}/pg-local.sh" env)"
  if ((TIER)); then
    CORRAL_REDIS_DIR=${WORK_DIR}/redis
    CORRAL_REDIS_PORT=$(corral_free_port)
    export CORRAL_REDIS_DIR CORRAL_REDIS_PORT
    "${DEPLOY_DIR}/redis-local.sh" start >/dev/null
    REDIS_STARTED=1
  fi

  local i corral_nodes="" corral_http=""
  for ((i = 1; i <= NODES; i++)); do
    RESP_PORT=$(corral_free_port)
    HTTP_PORT=$(corral_free_port)
    echo "${HTTP_PORT}" >"${WORK_DIR}/node-${i}.http"
    write_config "${WORK_DIR}/corral-${i}.json" "${RESP_PORT}" "${HTTP_PORT}"
    corral_server_start "${SERVER_BIN}" "${WORK_DIR}/corral-${i}.json" "${WORK_DIR}/corral-${i}.log"
    echo "${CORRAL_SERVER_PID}" >"${WORK_DIR}/node-${i}.pid"
    ORIGINAL_PIDS+=("${CORRAL_SERVER_PID}")
    corral_nodes+=${corral_nodes:+,}127.0.0.1:${RESP_PORT}
    corral_http+=${corral_http:+,}127.0.0.1:${HTTP_PORT}
  done
  cp "${WORK_DIR}/corral-1.json" "${OUT_DIR}/corral-1.json"
  : >"${WORK_DIR}/restarts.txt"

  # shellcheck disable=SC2054  # the commas are in one argument
  local args=(
    --scenario rolling --targets corral --corral "${corral_nodes}"
    --pg-primary "${CORRAL_PG_PRIMARY}" --pg-replicas "${CORRAL_PG_REPLICAS}"
    --namespace roll --query "${QUERY}" --ttl-ms "${TTL_MS}"
    --hot-keys "${KEYS}" --zipf "${ZIPF}" --rate "${RATE}" --steady-clients 300
    --steady-timeout-ms 1000 --retries 0
    --rolling-warm 15 --rolling-after 15 --rolling-timeout 240
    --rolling-command "bash $(printf %q "${SELF}") --restart-all $(printf %q "${WORK_DIR}")"
    --out "${OUT_DIR}"
  )
  ((TIER == 0)) || args+=(--shared-tier)
  ((PROBE == 0)) || args+=(--corral-http "${corral_http}")
  local status=0
  {
    printf '$ corral-herd'
    printf ' %q' "${args[@]}"
    printf '\n'
  } >"${OUT_DIR}/herd.txt"
  "${HERD_BIN}" "${args[@]}" | tee -a "${OUT_DIR}/herd.txt" || status=1
  snapshot_metrics end
  cp "${WORK_DIR}/restarts.txt" "${OUT_DIR}/restarts.txt"
  per_second_csv "${OUT_DIR}/results.json" >"${OUT_DIR}/per-second.csv" || status=1

  # The nodes this script started were all restarted: each must have drained and exited 0.
  local pid rc
  for ((i = 0; i < ${#ORIGINAL_PIDS[@]}; i++)); do
    pid=${ORIGINAL_PIDS[i]}
    if corral_process_is corral-server "${pid}"; then
      echo "node $((i + 1)) was never stopped" | tee -a "${OUT_DIR}/herd.txt"
      status=1
      continue
    fi
    rc=0
    wait "${pid}" || rc=$?
    if ((rc != 0)); then
      echo "node $((i + 1)) exited ${rc} after SIGTERM" | tee -a "${OUT_DIR}/herd.txt"
      status=1
    fi
  done
  {
    echo
    cat "${OUT_DIR}/restarts.txt"
    echo "rolling-restart ($( ((TIER)) && echo "shared Redis tier" || echo "no tier")):" \
      "$( ((status == 0)) && echo PASS || echo FAIL)"
  } | tee -a "${OUT_DIR}/herd.txt"
  echo "results: ${OUT_DIR}"
  return "${status}"
}

main "$@"
