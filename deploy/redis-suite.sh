#!/usr/bin/env bash
# Runs units of Redis's own Tcl test suite (tests/test_helper.tcl, external-server mode) against a
# corral-server it starts on a free port, and prints per unit how many cases passed and failed.
# A case that raises an exception (a command corral does not have: RPUSH, SETBIT, DEBUG, ...)
# aborts the rest of its file, so such a case is added to --skiptest and the unit is run again
# until it completes; those cases are listed as skipped, with the error that stopped them.
# Usage: deploy/redis-suite.sh REDIS_DIR UNIT...   e.g. deploy/redis-suite.sh /tmp/redis-tests \
#          unit/type/incr unit/type/string
#   REDIS_DIR holds Redis's tests/ directory, e.g. extracted from redis 7.0.15:
#     git --git-dir=<redis.git> archive 7.0.15 tests | tar -x -C /tmp/redis-tests
#   CORRAL_SERVER (default build/cache-server/corral-server) is the binary; logs go to
#   ${TMPDIR:-/tmp}/corral-redis-suite.
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

(($# >= 2)) || corral_die "usage: ${0##*/} REDIS_DIR UNIT..."
redis_dir=$1
shift
[[ -f ${redis_dir}/tests/test_helper.tcl ]] || corral_die "${redis_dir}/tests/test_helper.tcl not found"
command -v tclsh > /dev/null || corral_die "tclsh not found (Debian package tcl)"
server=${CORRAL_SERVER:-${root}/build/cache-server/corral-server}
[[ -x ${server} ]] || corral_die "${server} is not built"
logs=${TMPDIR:-/tmp}/corral-redis-suite
mkdir -p "${logs}"

port=$(corral_free_port_range 2)
"${server}" --resp "127.0.0.1:${port}" --http "127.0.0.1:$((port + 1))" --log-level warn \
  > "${logs}/corral.log" 2>&1 &
server_pid=$!
trap 'kill "${server_pid}" 2> /dev/null || true; wait "${server_pid}" 2> /dev/null || true' EXIT
for _ in $(seq 100); do
  redis-cli -p "${port}" ping > /dev/null 2>&1 && break
  sleep 0.1
done

status=0
for unit in "$@"; do
  out=${logs}/$(echo "${unit}" | tr / _)
  skips=()
  for _ in $(seq 100); do
    args=()
    for s in "${skips[@]+"${skips[@]}"}"; do args+=(--skiptest "${s}"); done
    (cd "${redis_dir}" && tclsh tests/test_helper.tcl --host 127.0.0.1 --port "${port}" \
      --singledb --single "${unit}" "${args[@]+"${args[@]}"}" > "${out}.log" 2>&1) || true
    grep -q 'exception' "${out}.log" || break
    # The case is the `test {NAME}` or `test "NAME"` in the exception's Tcl backtrace.
    name=$(grep -m1 -oE '^"test (\{[^}]*\}|"[^"]*")' "${out}.log" | sed -E 's/^"test [{"]//; s/[}"]$//')
    if [[ -z ${name} ]] || [[ " ${skips[*]+"${skips[*]}"} " == *" ${name} "* ]]; then
      echo "${unit}: an exception outside a nameable case; see ${out}.log"
      status=1
      break
    fi
    why=$(grep -m1 'Executing test client:' "${out}.log" | sed 's/.*Executing test client: //')
    echo "${unit}: skipped '${name}': ${why}"
    skips+=("${name}")
  done
  sed 's/\x1b\[[0-9;]*m//g' "${out}.log" | grep -E '^\[(ok|err|skip|ignore)\]' > "${out}.results" || true
  count() { grep -c "^\[$1\]" "${out}.results" || true; }
  echo "${unit}: ok $(count ok), err $(count err), skipped ${#skips[@]}, ignored by tag $(count ignore)"
  grep '^\[err\]' "${out}.results" || true
  [[ $(count err) == 0 ]] || status=1
done
exit "${status}"
