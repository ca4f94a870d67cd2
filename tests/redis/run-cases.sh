#!/usr/bin/env bash
# Redis's own Tcl suite against corral, one case at a time: each `test` of each unit runs alone
# (the harness's --only) against a fresh corral-server, so a case that needs what corral leaves out
# fails alone instead of ending its unit. Prints, per unit, the cases that passed, failed (named,
# with the error), and those that need a left-out data type, DEBUG or replication (named, with the
# command), and the share of the others that pass. A case that fails alone but passes when the
# unit's earlier cases that passed alone run first (it reads the state they leave: a RESP3
# connection, a client id) counts as passed, and is named as such.
# Usage: tests/redis/run-cases.sh REDIS_DIR UNIT...   e.g. tests/redis/run-cases.sh \
#          /tmp/redis-tests unit/multi unit/pubsub
#   REDIS_DIR holds Redis 7.0.15's tests/ (git archive 7.0.15 tests of a redis/redis clone; never
#   committed). CORRAL_SERVER (default build/cache-server/corral-server) is the binary. Logs go to
#   ${TMPDIR:-/tmp}/corral-redis-cases.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=deploy/lib.sh
source "${root}/deploy/lib.sh"

(($# >= 2)) || corral_die "usage: ${0##*/} REDIS_DIR UNIT..."
redis_dir=$1
shift
[[ -f ${redis_dir}/tests/test_helper.tcl ]] || corral_die "${redis_dir}/tests/test_helper.tcl not found"
command -v tclsh > /dev/null || corral_die "tclsh not found (Debian package tcl)"
server=${CORRAL_SERVER:-${root}/build/cache-server/corral-server}
[[ -x ${server} ]] || corral_die "${server} is not built"
logs=${TMPDIR:-/tmp}/corral-redis-cases
mkdir -p "${logs}"

# The commands of the data types corral leaves out (lists, sets, sorted sets, hashes, streams,
# bitmaps, HyperLogLog, geo), and the other things a case may need that corral does not have by
# design. A case whose first missing command is one of these is "left out".
left_out='^(l|r|b[lr])(push|pop|range|len|index|set|insert|rem|trim|pos|move|mpop|pushx|poplpush)$'
left_out+='|^s(add|card|diff|diffstore|inter|intercard|interstore|ismember|members|mismember|move|pop)$'
left_out+='|^s(randmember|rem|scan|union|unionstore)$|^z[a-z]+$|^h[a-z]+$|^x[a-z]+$'
left_out+='|^(setbit|getbit|bitcount|bitpos|bitop|bitfield|bitfield_ro)$'
left_out+='|^pf[a-z]+$|^geo[a-z]+$|^sort(_ro)?$|^lcs$|^eval(sha)?(_ro)?$|^fcall(_ro)?$'
left_out+='|^(save|bgsave|bgrewriteaof|lastsave|shutdown)$'  # persistence: corral keeps nothing on disk
reason_of() {  # the case's log -> "left out: CMD", "debug", "replication", or the error
  local log=$1 cmd
  cmd=$(grep -m1 -oE "ERR unknown command '[^']+'" "${log}" | sed -E "s/.*'([^']+)'/\1/" | tr 'A-Z' 'a-z' || true)
  local config
  config=$(grep -m1 -oE "argument '[^']+'" "${log}" | sed -E "s/argument '([^']+)'/\1/" || true)
  if [[ ${config} =~ ^(repl-|min-replicas|replica-|slave-) ]]; then
    echo "replication"
  elif [[ ${config} =~ ^(lua-|busy-reply) ]]; then
    echo "left out: scripts (CONFIG SET ${config})"
  elif [[ ${config} =~ ^(zset|hash|set|list|stream)- ]]; then
    # The encoding thresholds of a type corral leaves out (the case uses that type next).
    echo "left out: ${config%%-*}s (CONFIG SET ${config})"
  elif [[ ${cmd} == debug ]]; then
    echo "debug"
  elif [[ ${cmd} =~ ^(replicaof|slaveof|sync|psync|wait)$ ]]; then
    echo "replication"
  elif [[ -n ${cmd} && ${cmd} =~ ${left_out} ]]; then
    echo "left out: ${cmd}"
  elif grep -q "OBJECT ENCODING\|object encoding\|assert_encoding" "${log}"; then
    echo "left out: object encoding"
  else
    grep -m1 -E 'Expected|exception|ERR|Error' "${log}" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-160 || true
  fi
}

# The names of a unit's cases, from its source: test {NAME} / test "NAME". A name built from a
# variable ($cmd) becomes a regexp with .* in its place.
case_names() {
  grep -oE '^\s*test (\{[^}]*\}|"[^"]*")' "${redis_dir}/tests/$1.tcl" |
    sed -E 's/^\s*test [{"]//; s/[}"]$//' | awk '!seen[$0]++'
}

# Runs one case (--only PATTERN) of UNIT against a fresh corral-server; the harness's output goes
# to LOG. Further arguments go to the harness (--tags -needs:debug).
run_case() {
  local unit=$1 only=$2 log=$3 port pid
  shift 3
  port=$(corral_free_port_range 2)
  "${server}" --resp "127.0.0.1:${port}" --http "127.0.0.1:$((port + 1))" --log-level warn \
    > "${log%.log}.server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    redis-cli -p "${port}" ping > /dev/null 2>&1 && break
    sleep 0.05
  done
  (cd "${redis_dir}" && timeout 120 tclsh tests/test_helper.tcl --host 127.0.0.1 --port "${port}" \
    --singledb --single "${unit}" --only "${only}" "$@" > "${log}" 2>&1) || true
  kill "${pid}" 2> /dev/null || true
  wait "${pid}" 2> /dev/null || true
}

status=0
for unit in "$@"; do
  [[ -f ${redis_dir}/tests/${unit}.tcl ]] || corral_die "${unit}.tcl not found"
  out=${logs}/$(echo "${unit}" | tr / _)
  : > "${out}.results"
  passed_before=()  # --only arguments of the cases of this unit that passed alone so far
  while IFS= read -r name; do
    only=${name}
    if [[ ${name} == *'$'* ]]; then
      only="/^$(printf '%s' "${name}" | sed -E 's/[][().*+?^|\\]/\\&/g; s/\$[A-Za-z_:]+/.*/g')\$"
    fi
    run_case "${unit}" "${only}" "${out}.case.log"
    clean=$(sed 's/\x1b\[[0-9;]*m//g' "${out}.case.log")
    # With --only, every other case of the unit prints [skip]: only this case's lines count.
    if grep -qE '^\[err\]|^\[exception\]' <<< "${clean}"; then
      why=$(reason_of "${out}.case.log")
      # A case Redis tags needs:debug or needs:repl needs DEBUG or replication even when it
      # fails before sending either: run it again with the tag denied and see the harness skip it.
      if [[ ${why} != debug* && ${why} != replication* && ${why} != "left out: "* ]]; then
        for tag in debug repl; do
          run_case "${unit}" "${only}" "${out}.tag.log" --tags "-needs:${tag}"
          tagged=$(sed 's/\x1b\[[0-9;]*m//g' "${out}.tag.log")
          if grep -q '^\[ignore\]' <<< "${tagged}" &&
            ! grep -qE '^\[(ok|err|exception)\]' <<< "${tagged}"; then
            why=$([[ ${tag} == debug ]] && echo "debug (tagged needs:debug)" ||
              echo "replication (tagged needs:repl)")
            break
          fi
        done
      fi
      # A case may read what the unit's earlier cases left behind (a RESP3 connection, a client
      # id in a variable). Run it again after the earlier cases that passed alone, in the unit's
      # order, as the whole unit would run them minus the ones that need what corral leaves out.
      in_order=0
      if [[ ${why} != debug* && ${why} != replication* && ${why} != "left out: "* ]] &&
        ((${#passed_before[@]} > 0)); then
        run_case "${unit}" "${only}" "${out}.order.log" "${passed_before[@]}"
        if sed 's/\x1b\[[0-9;]*m//g' "${out}.order.log" | grep -qF "[ok]: ${name} ("; then
          in_order=1
        fi
      fi
      if ((in_order)); then
        printf 'ok\t%s\tafter the earlier cases\n' "${name}" >> "${out}.results"
      else
        case ${why} in
          debug* | replication* | "left out: "*) printf 'leftout\t%s\t%s\n' "${name}" "${why}" >> "${out}.results" ;;
          *) printf 'fail\t%s\t%s\n' "${name}" "${why}" >> "${out}.results" ;;
        esac
      fi
    elif grep -q '^\[ok\]' <<< "${clean}"; then
      printf 'ok\t%s\n' "${name}" >> "${out}.results"
      passed_before+=(--only "${only}")
    elif grep -q '^\[ignore\]' <<< "${clean}"; then
      printf 'tag\t%s\n' "${name}" >> "${out}.results"  # the harness skips it (its tags)
    else
      printf 'none\t%s\n' "${name}" >> "${out}.results"  # not run: a name this script misread
    fi
  done < <(case_names "${unit}")
  n() { grep -c "^$1	" "${out}.results" || true; }
  ok=$(n ok) fail=$(n fail) leftout=$(n leftout)
  share=$(awk -v ok="${ok}" -v f="${fail}" 'BEGIN { if (ok + f) printf "%.0f%%", 100 * ok / (ok + f); else print "-" }')
  echo "${unit}: ${ok} passed, ${fail} failed (${share} of the cases corral should pass), ${leftout} need what corral leaves out, $(n tag) skipped by their tags, $(n none) not matched"
  grep -P '^ok\t.*\tafter the earlier cases$' "${out}.results" | cut -f2 |
    sed 's/^/  passed only after the earlier cases (it reads their state): /' || true
  grep -P '^fail\t' "${out}.results" | cut -f2- | sed 's/\t/: /; s/^/  failed: /' || true
  grep -P '^leftout\t' "${out}.results" | cut -f2- | sed 's/\t/: /; s/^/  left out: /' || true
  [[ ${fail} == 0 ]] || status=1
done
exit "${status}"
