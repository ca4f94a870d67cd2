#!/usr/bin/env bash
# Checks corral's source shape before anything is built (run by deploy/run-tests.sh, so by CI):
#  1. every tracked C++ file is as clang-format (.clang-format: Google, 100 columns) would write it;
#  2. no include crosses a module boundary: proto/ and lease/ stay pure (no Asio, Beast, libpqxx
#     or hiredis), and within the server's modules libpqxx is included only by pg-loader/.
#     bench/herd is exempt from the libpqxx rule: it is a load generator standing in for the
#     application servers, and runs the cache-aside recipes' queries itself.
#     hiredis is included only by tier/ (the Redis client; bench/herd is exempt as well), and tier/
#     includes neither cache-server/ nor pg-loader/: the server wires the tier, not the reverse.
# Usage: deploy/check-source.sh [--fix]   (--fix rewrites the files clang-format would change)
# Exit status: 0 when both hold, 1 otherwise (each offending file or include is listed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
mapfile -t sources < <(git ls-files '*.cc' '*.h' '*.cpp' '*.hpp')
status=0

if [[ ${1:-} == --fix ]]; then
  "${CLANG_FORMAT}" -i "${sources[@]}"
fi

unformatted=()
for file in "${sources[@]}"; do
  if ! "${CLANG_FORMAT}" --dry-run --Werror "${file}" >/dev/null 2>&1; then
    unformatted+=("${file}")
  fi
done
if ((${#unformatted[@]})); then
  echo "check-source: clang-format would change these files (run deploy/check-source.sh --fix):"
  printf '  %s\n' "${unformatted[@]}"
  status=1
fi

# pattern, directories it must not appear in, why
boundary() {
  local pattern=$1 why=$2
  shift 2
  local hits
  hits=$(git grep -nE "^#include *[<\"](${pattern})" -- "$@" || true)
  if [[ -n ${hits} ]]; then
    echo "check-source: ${why}:"
    sed 's/^/  /' <<<"${hits}"
    status=1
  fi
}
boundary 'boost/asio|boost/beast|pqxx|hiredis' \
  'proto/ and lease/ are pure (no sockets, no SQL, no Redis client)' proto lease
boundary 'pqxx' 'libpqxx belongs to pg-loader/ alone' cache-server proto lease tier
boundary 'hiredis' 'hiredis belongs to tier/ alone (bench/herd, a client, is exempt)' \
  cache-server pg-loader proto lease
boundary 'cache-server/|pg-loader/' \
  'tier/ is a transport: it includes neither cache-server/ nor pg-loader/' tier

if ((status == 0)); then
  echo "check-source: ${#sources[@]} files formatted; module boundaries hold"
fi
exit "${status}"
