#!/usr/bin/env bash
# The performance record in README.md: every corral-herd scenario against corral, redis-naive and
# redis-lock in one invocation, on a throwaway local PostgreSQL (primary + 2 streaming replicas),
# Redis and corral-server that this script starts and stops.
#
# Usage: bench/herd/record.sh [--nodes N] [--redis-tier HOST:PORT[,...]|cluster]
#                              [--static-limits] [--scenario LIST] [--targets LIST] [OUT_DIR]
# (OUT_DIR default: a new directory under /tmp.) Writes OUT_DIR/results.json, results.csv, one SVG
# per scenario, corral.json (corral's config for the run) and herd.txt (the printed table).
# Environment: CORRAL_BUILD_DIR (default build); CORRAL_BURST_VARIANTS (default "200x10-50ms
# 2000x4-50ms 200x10-300ms": KEYSxCLIENTS-QUERY, the query 50ms or 300ms) narrows --scenario
# burst. Takes about 15 minutes with every scenario; needs what deploy/install-deps.sh installs.
#
# Several nodes (issue 14): --nodes N starts N corral-servers with the same config on their own
# free ports (OUT_DIR/corral.json is node 1's; node i's differs only in its listen ports) and
# spreads corral-herd's clients over them. Without --redis-tier each node is its own cache (a cold
# key may cost one query per node). --redis-tier gives every node's config a "redis" section with
# those nodes (cluster: a local 3-master Redis Cluster, deploy/redis-cluster-local.sh) and tells
# corral-herd the nodes share a tier.
# --scenario and --targets are passed to corral-herd (default: all, and all three targets).
#
# Scenario parameters, and why:
# - cold, keys: the namespace `herd` sleeps 200 ms per query, so that a herd has time to pile up.
#   corral gets 64 connections per replica: 200 cold keys × 200 ms over the default 8 would take
#   2.5 s, past lease.wait_timeout_ms (2 s), and the last waiters would get BUSY. With --nodes N
#   the 64 are shared: each node gets 64 / N (rounded up), as a fleet would size its pools so that
#   the replicas' max_connections holds them all.
# - expiry-storm: 50 hot keys on `storm`, corral's default TTL (60 s) and jitter (0.1), 200 ms
#   loads, Zipf traffic at 5000 requests/s over 2000 connections. The cache-aside clients get a
#   pool of 512 connections per replica, like a fleet of application servers, so their stampede
#   is not capped by one process's pool.
# - vicious-cycle: 1000 keys on `cycle` (TTL 10 s), 2000 requests/s, 200 ms client timeout and 3
#   retries; each query sleeps 2 ms × the number of active backends, a database that slows down as
#   its load grows; ×10 slower for 5 s after 20 s. corral's pool limit adapts to it (issue 15);
#   --static-limits bounds the namespace at 32 loads by hand instead, as the record did before.
# - burst (only when named in --scenario; issue 15): many distinct cold keys at once on a healthy
#   database, on a pool `burst` with the default settings (8 connections per replica, the limit
#   adaptive up to 8 × 2 replicas = 16, lease.wait_timeout_ms 2 s). Three variants, one
#   corral-herd run each (OUT_DIR/burst-<variant>/): 200 keys × 10 clients with a 50 ms query
#   (namespace `burst`; capacity in the wait bound 16 × 2000 / 50 = 640 loads, so all 200 fit),
#   the same with a 300 ms query (`burst300`; capacity 16 × 2000 / 300 ≈ 107) and 2000 keys × 4
#   clients with 50 ms (capacity 640; 4 clients a key, not 10: 20 000 sockets is this machine's
#   file limit, and Redis takes 10 000 clients). --static-limits pins the pool's limit at its
#   ceiling (min_inflight_loads = max_inflight_loads = 16): today's static limit.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPLOY_DIR=${ROOT_DIR}/deploy
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

BUILD_DIR=${CORRAL_BUILD_DIR:-build}
[[ ${BUILD_DIR} == /* ]] || BUILD_DIR=${ROOT_DIR}/${BUILD_DIR}
SERVER_BIN=${BUILD_DIR}/cache-server/corral-server
HERD_BIN=${BUILD_DIR}/bench/corral-herd
NODES=1
REDIS_TIER=""
STATIC_LIMITS=0
SCENARIOS=all
TARGETS=corral,redis-naive,redis-lock
OUT_DIR=""

# shellcheck disable=SC2016  # $1 is the queries' parameter, not the shell's
HERD_QUERY='SELECT name FROM users, pg_sleep(0.2) WHERE id = $1::bigint'
# shellcheck disable=SC2016
STORM_QUERY="SELECT name FROM users, pg_sleep(current_setting('herd.delay_s', true)::float8) WHERE id = \$1::bigint"
# shellcheck disable=SC2016
BURST_QUERY='SELECT name FROM users, pg_sleep(0.05) WHERE id = $1::bigint'
# shellcheck disable=SC2016
BURST300_QUERY='SELECT name FROM users, pg_sleep(0.3) WHERE id = $1::bigint'
# The burst pool: PostgreSQL's default settings but for the limit, which --static-limits pins.
BURST_CONNECTIONS=8
BURST_REPLICAS=2
BURST_WAIT_MS=2000
# shellcheck disable=SC2016
CYCLE_QUERY="SELECT name FROM users, pg_sleep(current_setting('herd.delay_s', true)::float8 * (SELECT count(*) FROM pg_stat_activity WHERE state = 'active')) WHERE id = \$1::bigint"

WORK_DIR=""
REDIS_STARTED=0
CLUSTER_STARTED=0
SERVER_PIDS=()

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n ${WORK_DIR} ]]; then
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
      CORRAL_SERVER_PID=${pid}
      corral_server_stop
    done
    if ((REDIS_STARTED)); then "${DEPLOY_DIR}/redis-local.sh" stop >/dev/null || true; fi
    if ((CLUSTER_STARTED)); then
      "${DEPLOY_DIR}/redis-cluster-local.sh" stop >/dev/null || true
    fi
    "${DEPLOY_DIR}/pg-local.sh" stop >/dev/null || true
    rm -rf "${WORK_DIR}"
  fi
  exit "${status}"
}

usage() {
  echo "usage: ${0##*/} [--nodes N] [--redis-tier HOST:PORT[,...]|cluster] [--static-limits]" \
    "[--scenario LIST] [--targets LIST] [OUT_DIR]" >&2
  exit 2
}

parse_args() {
  while (($# > 0)); do
    case "$1" in
      --nodes)
        (($# >= 2)) || usage
        if [[ ! $2 =~ ^[1-9][0-9]*$ ]] || (($2 > 16)); then
          corral_die "--nodes: expected 1..16, got '$2'"
        fi
        NODES=$2
        shift 2
        ;;
      --redis-tier)
        (($# >= 2)) || usage
        [[ $2 == cluster || $2 =~ ^[^,:]+:[0-9]+(,[^,:]+:[0-9]+)*$ ]] ||
          corral_die "--redis-tier: expected HOST:PORT[,HOST:PORT...] or cluster, got '$2'"
        REDIS_TIER=$2
        shift 2
        ;;
      --static-limits)
        STATIC_LIMITS=1
        shift
        ;;
      --scenario | --targets)
        (($# >= 2)) || usage
        if [[ $1 == --scenario ]]; then SCENARIOS=$2; else TARGETS=$2; fi
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
  OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/corral-record.XXXXXX)}
  [[ ${OUT_DIR} == /* ]] || OUT_DIR=${PWD}/${OUT_DIR}
}

# The "redis" section of corral's config for --redis-tier (with its trailing comma), or nothing.
redis_section() {
  [[ -n ${REDIS_TIER} ]] || return 0
  local nodes="" node
  for node in ${REDIS_TIER//,/ }; do
    nodes+=${nodes:+, }\"${node}\"
  done
  printf '  "redis": { "nodes": [%s], "prefix": "herd:" },\n' "${nodes}"
}

# The cycle namespace's hand-set bound with --static-limits (with its leading comma), or nothing.
cycle_cap() {
  ((STATIC_LIMITS)) || return 0
  printf ', "max_inflight_loads": 32'
}

# The burst pool's settings: the defaults, or the limit pinned at its ceiling (--static-limits).
burst_pool() {
  if ((STATIC_LIMITS)); then
    local ceiling=$((BURST_CONNECTIONS * BURST_REPLICAS))
    printf '{ "min_inflight_loads": %d, "max_inflight_loads": %d }' "${ceiling}" "${ceiling}"
  else
    printf '{}'
  fi
}

# JSON string literal of $1 (the queries hold quotes).
json_string() {
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"
}

write_config() {
  cat >"$1" <<EOF
{
  "listen": { "resp": "127.0.0.1:${RESP_PORT}", "http": "127.0.0.1:${HTTP_PORT}" },
  "postgres": {
    "primary": "$(corral_conninfo "${CORRAL_PG_PORT}")",
    "replicas": ["$(corral_conninfo $((CORRAL_PG_PORT + 1)))",
                 "$(corral_conninfo $((CORRAL_PG_PORT + 2)))"],
    "pools": { "default": { "connections": $(((64 + NODES - 1) / NODES)) },
               "burst": $(burst_pool) }
  },
  "namespaces": {
    "herd": { "query": $(json_string "${HERD_QUERY}"), "max_inflight_loads": 1024 },
    "storm": { "query": $(json_string "${STORM_QUERY}") },
    "cycle": { "query": $(json_string "${CYCLE_QUERY}"), "ttl_ms": 10000$(cycle_cap) },
    "burst": { "query": $(json_string "${BURST_QUERY}"), "pool": "burst" },
    "burst300": { "query": $(json_string "${BURST300_QUERY}"), "pool": "burst" }
  },
$(redis_section)
  "shedding": { "max_clients": 20000 }
}
EOF
}

# run_herd DIR ARGS...: corral-herd with ARGS (and --out DIR), its command line and table in
# DIR/herd.txt.
run_herd() {
  local dir=$1
  shift
  mkdir -p "${dir}"
  {
    printf '$ corral-herd'
    printf ' %q' "$@" --out "${dir}"
    printf '\n'
  } | tee "${dir}/herd.txt"
  "${HERD_BIN}" "$@" --out "${dir}" | tee -a "${dir}/herd.txt"
}

main() {
  parse_args "$@"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "${OUT_DIR}"
  cmake -S "${ROOT_DIR}" -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "${BUILD_DIR}" -j "$(nproc)" --target corral-server corral-herd

  WORK_DIR=$(mktemp -d /tmp/corral-record-run.XXXXXX)
  chmod 755 "${WORK_DIR}" # the postgres user must reach its data directory inside
  CORRAL_PG_DIR=${WORK_DIR}/pg
  CORRAL_PG_PORT=$(corral_free_port_range 3)
  # 512 cache-aside connections per replica, corral's pools, the referee.
  CORRAL_PG_MAX_CONNECTIONS=600
  export CORRAL_PG_DIR CORRAL_PG_PORT CORRAL_PG_MAX_CONNECTIONS
  "${DEPLOY_DIR}/pg-local.sh" start >/dev/null
  eval "$("${DEPLOY_DIR}/pg-local.sh" env)"
  CORRAL_REDIS_DIR=${WORK_DIR}/redis
  CORRAL_REDIS_PORT=$(corral_free_port)
  export CORRAL_REDIS_DIR CORRAL_REDIS_PORT
  "${DEPLOY_DIR}/redis-local.sh" start >/dev/null
  REDIS_STARTED=1

  if [[ ${REDIS_TIER} == cluster ]]; then
    CORRAL_REDIS_CLUSTER_DIR=${WORK_DIR}/redis-cluster
    export CORRAL_REDIS_CLUSTER_DIR
    CLUSTER_STARTED=1
    local cluster_env
    cluster_env=$("${DEPLOY_DIR}/redis-cluster-local.sh" start) # fails the script if start does
    eval "${cluster_env}"
    REDIS_TIER=${CORRAL_REDIS_CLUSTER_NODES}
  fi

  # N nodes, the same config but for their ports; node 1's is OUT_DIR/corral.json.
  local node config corral_nodes="" http_ports=()
  for ((node = 1; node <= NODES; node++)); do
    RESP_PORT=$(corral_free_port)
    HTTP_PORT=$(corral_free_port)
    config=${OUT_DIR}/corral.json
    ((node == 1)) || config=${WORK_DIR}/corral-${node}.json
    write_config "${config}"
    corral_server_start "${SERVER_BIN}" "${config}" "${WORK_DIR}/corral-${node}.log"
    SERVER_PIDS+=("${CORRAL_SERVER_PID}")
    corral_nodes+=${corral_nodes:+,}127.0.0.1:${RESP_PORT}
    http_ports+=("${HTTP_PORT}")
  done
  # Traffic starts once every node says it is ready (its replicas checked, its Redis tier joined),
  # as a load balancer would send it: a node still joining the tier loads on its own, and those
  # queries would be counted against the tier's one query per key.
  local port
  for port in "${http_ports[@]}"; do
    corral_wait_until 60 "corral-server on HTTP port ${port} to be ready" \
      curl -fsS "http://127.0.0.1:${port}/readyz" ||
      corral_die "corral-server on HTTP port ${port} did not become ready"
  done

  # shellcheck disable=SC2054  # the commas are in one argument
  local args=(
    --scenario "${SCENARIOS}" --targets "${TARGETS}"
    --corral "${corral_nodes}" --redis "127.0.0.1:${CORRAL_REDIS_PORT}"
    --pg-primary "${CORRAL_PG_PRIMARY}" --pg-replicas "${CORRAL_PG_REPLICAS}"
    --db-connections 512
    --namespace herd --query "${HERD_QUERY}" --ttl-ms 60000 --clients 10000 --keys 200 --clients-per-key 10
    --storm-namespace storm --storm-query "${STORM_QUERY}" --storm-ttl-ms 60000
    --storm-hot-keys 50 --storm-rate 5000 --storm-clients 2000 --storm-timeout-ms 1000
    --storm-db-delay-ms 200 --duration 66
    --vc-namespace cycle --vc-query "${CYCLE_QUERY}" --vc-ttl-ms 10000 --vc-hot-keys 1000
    --vc-rate 2000 --vc-clients 400 --vc-timeout-ms 200 --vc-retries 3 --vc-db-delay-ms 2
    --vc-warm 20 --vc-slow 5 --vc-recover 25
  )
  [[ -z ${REDIS_TIER} ]] || args+=(--shared-tier)
  local http_nodes=""
  for port in "${http_ports[@]}"; do http_nodes+=${http_nodes:+,}127.0.0.1:${port}; done
  args+=(--corral-http "${http_nodes}")

  # burst runs once per variant, into its own directory; the other scenarios in one run.
  local scenario others="" burst=0
  for scenario in ${SCENARIOS//,/ }; do
    if [[ ${scenario} == burst ]]; then burst=1; else others+=${others:+,}${scenario}; fi
  done
  if [[ -n ${others} ]]; then
    args[1]=${others}
    run_herd "${OUT_DIR}" "${args[@]}"
  fi
  if ((burst)); then
    local variant keys per_key ns query query_ms id_min=1 id_max
    for variant in ${CORRAL_BURST_VARIANTS:-200x10-50ms 2000x4-50ms 200x10-300ms}; do
      # Each variant its own seeded ids (keys × 3 targets of them): the runs share one corral, and
      # a key an earlier variant loaded would be a hit here. The 300 ms variant goes last: the
      # pool's adaptive limit ends it lower than it began, and stays there until loads raise it.
      IFS=x- read -r keys per_key query_ms <<<"${variant}"
      query_ms=${query_ms%ms}
      [[ ${keys} =~ ^[0-9]+$ && ${per_key} =~ ^[0-9]+$ && ${query_ms} =~ ^(50|300)$ ]] ||
        corral_die "CORRAL_BURST_VARIANTS: expected KEYSxCLIENTS-50ms or -300ms, got '${variant}'"
      id_max=$((id_min + keys * 3 - 1))
      ns=burst query=${BURST_QUERY}
      if ((query_ms == 300)); then ns=burst300 query=${BURST300_QUERY}; fi
      args[1]=burst
      run_herd "${OUT_DIR}/burst-${variant}" "${args[@]}" --burst-namespace "${ns}" \
        --burst-query "${query}" --burst-ttl-ms 60000 --burst-keys "${keys}" \
        --burst-clients-per-key "${per_key}" --burst-pool burst \
        --id-min "${id_min}" --id-max "${id_max}" \
        --burst-capacity $((BURST_CONNECTIONS * BURST_REPLICAS * BURST_WAIT_MS / query_ms))
      id_min=$((id_max + 1))
    done
  fi
  echo "record: ${OUT_DIR}"
}

main "$@"
