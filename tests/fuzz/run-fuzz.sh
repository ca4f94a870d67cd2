#!/usr/bin/env bash
# Runs corral's libFuzzer targets (tests/fuzz/*_fuzz.cc, built with -DCORRAL_FUZZ=ON).
#
#   run-fuzz.sh --replay BINARY          runs BINARY once over its seed corpus and past crashes
#                                        (corpus/<name>/, regressions/<name>/); what ctest runs
#   run-fuzz.sh [-t SECONDS] BINARY...   fuzzes each BINARY for SECONDS (default 30) over a scratch
#                                        copy of its seed corpus, and prints how many inputs ran
#
# <name> is the binary's name without "_fuzz". New corpus entries go to the scratch copy, never
# into the repository. A crash is kept in CORRAL_FUZZ_ARTIFACTS (default ./fuzz-artifacts/<name>/);
# once fixed, copy it into regressions/<name>/ so that every later run replays it.
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [[ -z ${ASAN_SYMBOLIZER_PATH:-} && -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
MAX_LEN=${CORRAL_FUZZ_MAX_LEN:-8192}

target_name() {
  local base
  base=$(basename "$1")
  echo "${base%_fuzz}"
}

if [[ ${1:-} == --replay ]]; then
  binary=$2
  name=$(target_name "${binary}")
  inputs=()
  for dir in "${FUZZ_DIR}/corpus/${name}" "${FUZZ_DIR}/regressions/${name}"; do
    if [[ -d ${dir} ]]; then
      while IFS= read -r -d '' file; do inputs+=("${file}"); done \
        < <(find "${dir}" -type f ! -name 'README*' -print0)
    fi
  done
  if ((${#inputs[@]} == 0)); then
    echo "run-fuzz.sh: no seed corpus for ${name} in ${FUZZ_DIR}/corpus/${name}" >&2
    exit 1
  fi
  echo "replaying ${#inputs[@]} inputs through ${name}"
  exec "${binary}" "${inputs[@]}"
fi

seconds=30
if [[ ${1:-} == -t ]]; then
  seconds=$2
  shift 2
fi
(($# > 0)) || { echo "usage: run-fuzz.sh [-t SECONDS] BINARY..." >&2; exit 2; }

artifacts_root=${CORRAL_FUZZ_ARTIFACTS:-${PWD}/fuzz-artifacts}
scratch=$(mktemp -d /tmp/corral-fuzz.XXXXXX)
trap 'rm -rf "${scratch}"' EXIT

status=0
summary=()
for binary in "$@"; do
  name=$(target_name "${binary}")
  corpus=${scratch}/${name}
  mkdir -p "${corpus}" "${artifacts_root}/${name}"
  if [[ -d ${FUZZ_DIR}/corpus/${name} ]]; then
    find "${FUZZ_DIR}/corpus/${name}" -type f ! -name 'README*' -exec cp {} "${corpus}/" \;
  fi
  log=${scratch}/${name}.log
  seeds=$(find "${corpus}" -type f | wc -l)
  echo "--- fuzzing ${name} for ${seconds}s (seed corpus: ${seeds} files)"
  target_status=0
  "${binary}" -max_total_time="${seconds}" -max_len="${MAX_LEN}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="${artifacts_root}/${name}/" "${corpus}" \
    >"${log}" 2>&1 || target_status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -n 1)
  if ((target_status != 0)); then
    status=1
    tail -n 60 "${log}"
    summary+=("$(printf '%-14s FAILED (exit %d) after %s runs; input kept in %s' "${name}" \
      "${target_status}" "${runs:-?}" "${artifacts_root}/${name}/")")
  else
    grep -E '^(#[0-9]+ *DONE|Done [0-9]+ runs)' "${log}" | tail -n 1 || true
    summary+=("$(printf '%-14s ok: %s runs in %ss, corpus grew to %s inputs' "${name}" \
      "${runs:-?}" "${seconds}" "$(find "${corpus}" -type f | wc -l)")")
  fi
done
echo "--- fuzz summary"
printf '%s\n' "${summary[@]}"
exit "${status}"
