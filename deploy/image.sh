#!/usr/bin/env bash
# Builds corral's container image from deploy/Containerfile without a registry, the way CI does:
# debootstrap a Debian 12 minbase root, commit it with buildah as a local base image (BASE), run
# `buildah bud --isolation chroot` on it, then check the result from its own mounted root with
# chroot (no OCI runtime needed): the runtime packages (no compiler, no -dev package), the size,
# `corral-server --version` and `--check-config`, and a corral-server answering PING and /healthz
# while its database is down, stopped by SIGTERM with exit status 0.
#
# Usage: deploy/image.sh [--from-build BUILD_DIR]
#   --from-build DIR  the image takes DIR/cache-server/corral-server and DIR/bench/corral-herd
#                     (the binaries the tests ran; debug info stripped, build id kept) instead of
#                     compiling them in the Containerfile's build stage. Without it the build stage
#                     compiles the working tree (several minutes on 2 cores).
# Environment:
#   CORRAL_IMAGE_NAME    image name (default localhost/corral/corral-server); the tags are the
#                        binary's version (X.Y.Z, what deploy/k8s names) and X.Y.Z-COMMIT
#   CORRAL_IMAGE_BASE    an existing Debian 12 image to build on (e.g. debian:bookworm-slim when a
#                        registry is reachable) instead of debootstrapping one
#   CORRAL_DEBIAN_MIRROR debootstrap's mirror (default http://deb.debian.org/debian)
# Needs root, buildah, debootstrap, redis-cli and curl (deploy/install-deps.sh installs them). The
# image stays in the local containers-storage; the base image, containers and temp files go.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "${DEPLOY_DIR}/.." && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

IMAGE_NAME=${CORRAL_IMAGE_NAME:-localhost/corral/corral-server}
MIRROR=${CORRAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SIZE_GOAL_MB=150
FROM_BUILD=""

while (($# > 0)); do
  case $1 in
    --from-build)
      (($# >= 2)) || corral_die "--from-build needs a build directory"
      FROM_BUILD=$2
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) corral_die "unknown argument '$1' (see --help)" ;;
  esac
done

((EUID == 0)) || corral_die "run as root (debootstrap, buildah mount and chroot need it)"
for tool in buildah debootstrap chroot redis-cli curl strip; do
  command -v "${tool}" >/dev/null || corral_die "${tool} not found (run deploy/install-deps.sh)"
done
if [[ -n ${FROM_BUILD} ]]; then
  [[ ${FROM_BUILD} == /* ]] || FROM_BUILD=${ROOT_DIR}/${FROM_BUILD}
  for binary in cache-server/corral-server bench/corral-herd; do
    [[ -x ${FROM_BUILD}/${binary} ]] || corral_die "no ${FROM_BUILD}/${binary}; build it first"
  done
fi

START=${SECONDS}
WORK=$(mktemp -d /tmp/corral-image.XXXXXX)
BASE_IMAGE=""    # the local base image this run committed (removed at the end)
CONTAINERS=()    # working containers this run created (removed at the end)
CORRAL_SERVER_PID=""
failures=0

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local status=$? container
  trap - EXIT INT TERM
  corral_server_stop
  for container in "${CONTAINERS[@]}"; do
    buildah umount "${container}" >/dev/null 2>&1 || true
    buildah rm "${container}" >/dev/null 2>&1 || true
  done
  if [[ -n ${BASE_IMAGE} ]]; then
    buildah rmi "${BASE_IMAGE}" >/dev/null 2>&1 || true
  fi
  rm -rf "${WORK}"
  exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  corral_log "FAILED: $*"
  failures=$((failures + 1))
}

step() {
  printf '\n--- [%3ds] %s\n' $((SECONDS - START)) "$*"
}

# new_container IMAGE: prints the name of a new working container of IMAGE (removed at the end).
# Called as `var=$(new_container ...)` it would lose CONTAINERS, so it sets CONTAINER instead.
new_container() {
  CONTAINER=$(buildah from --pull-never "$1")
  CONTAINERS+=("${CONTAINER}")
}

# The commit as commit.cmake sees it, for the build stage's CORRAL_COMMIT (no .git in there).
source_commit() {
  local commit
  commit=$(git -C "${ROOT_DIR}" rev-parse --short=12 HEAD 2>/dev/null) || {
    echo unknown
    return
  }
  git -C "${ROOT_DIR}" diff --quiet HEAD -- 2>/dev/null || commit+=-dirty
  echo "${commit}"
}

# --- 1. The base: a Debian 12 minbase root as a local image, trimmed as bookworm-slim is. --------
if [[ -n ${CORRAL_IMAGE_BASE:-} ]]; then
  base=${CORRAL_IMAGE_BASE}
  step "base image: ${base} (CORRAL_IMAGE_BASE)"
else
  step "base image: debootstrap --variant=minbase bookworm (${MIRROR})"
  new_container scratch
  root=$(buildah mount "${CONTAINER}")
  [[ -d ${root} && ${root} != / ]] || corral_die "buildah mount gave '${root}'"
  # Two stages, so that dpkg's configuration is in place before dpkg installs anything: as in
  # debian:bookworm-slim, no fsync per file (a throw-away build root: twice as fast) and no
  # documentation, manual pages or translations, for these packages and the runtime stage's.
  stage_start=${SECONDS}
  if ! debootstrap --foreign --variant=minbase bookworm "${root}" "${MIRROR}" \
    >"${WORK}/debootstrap.log" 2>&1; then
    tail -n 20 "${WORK}/debootstrap.log" >&2
    corral_die "debootstrap failed"
  fi
  echo "debootstrap: $(grep -c '^I: Retrieving [a-z]' "${WORK}/debootstrap.log") packages" \
    "fetched and unpacked in $((SECONDS - stage_start)) s"
  stage_start=${SECONDS}
  mkdir -p "${root}/etc/dpkg/dpkg.cfg.d"
  cat >"${root}/etc/dpkg/dpkg.cfg.d/corral-slim" <<'EOF'
# deploy/image.sh: quick and small, as debian:bookworm-slim.
force-unsafe-io
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  if ! chroot "${root}" /debootstrap/debootstrap --second-stage >>"${WORK}/debootstrap.log" \
    2>&1; then
    tail -n 20 "${WORK}/debootstrap.log" >&2
    corral_die "debootstrap --second-stage failed"
  fi
  echo "debootstrap --second-stage: installed in $((SECONDS - stage_start)) s"
  # As the official image: the updates and security suites as well.
  cat >"${root}/etc/apt/sources.list" <<EOF
deb ${MIRROR} bookworm main
deb ${MIRROR} bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  chroot "${root}" apt-get clean
  find "${root}/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  rm -rf "${root}"/usr/share/{man,info,locale,lintian}/* "${root}"/var/lib/apt/lists/* \
    "${root}"/var/log/*.log "${root}"/var/log/apt/* "${root}"/var/cache/debconf/*-old
  buildah umount "${CONTAINER}" >/dev/null
  BASE_IMAGE=localhost/corral/debian-base:bookworm-$$
  buildah commit --quiet --rm "${CONTAINER}" "${BASE_IMAGE}" >/dev/null
  unset 'CONTAINERS[-1]'
  base=${BASE_IMAGE}
  echo "committed ${base} ($(buildah images --format '{{.Size}}' "${base}"))"
fi

# --- 2. The build context and the image -----------------------------------------------------------
build_args=(--build-arg "BASE=${base}")
if [[ -n ${FROM_BUILD} ]]; then
  step "context: the binaries of ${FROM_BUILD} (no compile in the build stage)"
  context=${WORK}/context
  mkdir -p "${context}/prebuilt" "${context}/deploy"
  for binary in cache-server/corral-server bench/corral-herd; do
    # Debug info stays in the build tree; the build id (and the code) are the tested binary's.
    strip --strip-debug -o "${context}/prebuilt/${binary##*/}" "${FROM_BUILD}/${binary}"
    tested=$(readelf -n "${FROM_BUILD}/${binary}" | awk '/Build ID/ { print $3 }')
    shipped=$(readelf -n "${context}/prebuilt/${binary##*/}" | awk '/Build ID/ { print $3 }')
    [[ -n ${tested} && ${tested} == "${shipped}" ]] ||
      corral_die "${binary}: build id changed by strip (${tested} -> ${shipped})"
    printf '%-14s build id %s, %s -> %s bytes\n' "${binary##*/}" "${tested}" \
      "$(stat -c %s "${FROM_BUILD}/${binary}")" "$(stat -c %s "${context}/prebuilt/${binary##*/}")"
  done
  cp "${DEPLOY_DIR}/corral.example.json" "${context}/deploy/"
  build_args+=(--build-arg PREBUILT=prebuilt)
  expected_version=$("${FROM_BUILD}/cache-server/corral-server" --version)
  expected_commit=""
else
  commit=$(source_commit)
  step "context: ${ROOT_DIR} (the build stage compiles it; CORRAL_COMMIT=${commit})"
  context=${ROOT_DIR}
  build_args+=(--build-arg "CORRAL_COMMIT=${commit}")
  expected_version=""
  expected_commit=${commit}
fi

step "buildah bud -f deploy/Containerfile"
if ! buildah bud --isolation chroot --quiet --iidfile "${WORK}/iid" \
  -f "${DEPLOY_DIR}/Containerfile" "${build_args[@]}" "${context}" >"${WORK}/bud.log" 2>&1; then
  tail -n 40 "${WORK}/bud.log" >&2
  corral_die "buildah bud failed"
fi
image=$(<"${WORK}/iid")
image=${image#sha256:}

# --- 3. Check it from its own root ----------------------------------------------------------------
new_container "${image}"
root=$(buildah mount "${CONTAINER}")
[[ -d ${root} && ${root} != / ]] || corral_die "buildah mount gave '${root}'"
in_image() { chroot --userspec=65532:65532 "${root}" "$@"; }

step "corral-server --version (from the image)"
version_line=$(in_image /usr/local/bin/corral-server --version) || fail "--version failed"
echo "${version_line}"
version_pattern='^corral-server ([0-9]+\.[0-9]+\.[0-9]+) \(commit ([0-9A-Za-z._-]+)\)$'
if [[ ! ${version_line} =~ ${version_pattern} ]]; then
  corral_die "unexpected --version output: '${version_line}'"
fi
version=${BASH_REMATCH[1]}
commit=${BASH_REMATCH[2]}
if [[ -n ${expected_version} && ${version_line} != "${expected_version}" ]]; then
  fail "the image's binary says '${version_line}', the build's '${expected_version}'"
fi
if [[ -n ${expected_commit} && ${commit} != "${expected_commit}" ]]; then
  fail "the image's binary names commit ${commit}, not the source's ${expected_commit}"
fi
[[ ${commit} != unknown ]] || fail "the image's corral-server does not know its commit"

# Tag it as the binary names itself; an image that held the tag before and has none left goes.
tags=("${IMAGE_NAME}:${version}" "${IMAGE_NAME}:${version}-${commit}")
old_images=()
for tag in "${tags[@]}"; do
  old=$(buildah images --noheading --no-trunc --format '{{.ID}}' "${tag}" 2>/dev/null || true)
  [[ -z ${old} || ${old#sha256:} == "${image}" ]] || old_images+=("${old}")
done
buildah tag "${image}" "${tags[@]}"
for old in "${old_images[@]}"; do
  if ! buildah images --noheading --format '{{.Tag}}' "${old}" 2>/dev/null | grep -qv '<none>'; then
    buildah rmi "${old}" >/dev/null 2>&1 || true
  fi
done

step "runtime packages (no compiler, no -dev package)"
# shellcheck disable=SC2016  # dpkg-query's format, not the shell's
chroot "${root}" dpkg-query -W -f '${Package}\n' | sort >"${WORK}/packages"
echo "$(wc -l <"${WORK}/packages") packages:"
fmt -w 100 "${WORK}/packages" | sed 's/^/  /'
build_tools='gcc|g\+\+|cpp|clang|llvm|binutils|make|cmake|ninja-build'
forbidden=$(grep -E -- "-dev\$|^(${build_tools})(-[0-9.]+)?\$" "${WORK}/packages" || true)
[[ -z ${forbidden} ]] || fail "build-time packages in the runtime image: ${forbidden//$'\n'/ }"
for tool in cc c++ gcc g++ clang clang++ ld as make cmake; do
  [[ ! -e ${root}/usr/bin/${tool} ]] || fail "/usr/bin/${tool} is in the runtime image"
done
[[ -n ${forbidden} ]] || echo "no -dev package, compiler, linker or build tool"
for need in sleep sh; do # a preStop or debug shell a user adds finds them (deploy/k8s needs none)
  [[ -x ${root}/bin/${need} ]] || fail "/bin/${need} is missing"
done

step "size"
size=$(buildah images --format '{{.Size}}' "${image}" | awk 'NR == 1')  # awk reads it all: no SIGPIPE
bytes=$(du -sxb "${root}" | cut -f1)
size_mb=$((bytes / 1000000))
echo "${tags[0]}: ${size} (root filesystem ${size_mb} MB; goal under ${SIZE_GOAL_MB} MB)"
((size_mb < SIZE_GOAL_MB)) || fail "the image is ${size_mb} MB, over the ${SIZE_GOAL_MB} MB goal"

step "corral-server --check-config /etc/corral/corral.json, corral-herd --help (from the image)"
in_image /usr/local/bin/corral-server --check-config /etc/corral/corral.json ||
  fail "the image's corral-server rejects its own /etc/corral/corral.json"
in_image /usr/local/bin/corral-herd --help >/dev/null || fail "the image's corral-herd does not run"

step "corral-server from the image, its database down: PING, /healthz, /readyz, SIGTERM"
RESP_PORT=$(corral_free_port)
HTTP_PORT=$(corral_free_port)
DEAD_PORT=$(corral_free_port) # nothing listens there: PostgreSQL is "down"
# The image's config with every PostgreSQL port pointed at DEAD_PORT, in the container's /tmp.
sed -E "s/port=[0-9]+/port=${DEAD_PORT}/g" "${root}/etc/corral/corral.json" \
  >"${root}/tmp/smoke.json"
chmod 644 "${root}/tmp/smoke.json"
# chroot itself, not in_image: $! must be the process that becomes corral-server.
chroot --userspec=65532:65532 "${root}" /usr/local/bin/corral-server --config /tmp/smoke.json \
  --resp "127.0.0.1:${RESP_PORT}" --http "127.0.0.1:${HTTP_PORT}" >"${WORK}/server.log" 2>&1 &
CORRAL_SERVER_PID=$!
if corral_wait_until 30 "corral-server (from the image) to answer" _corral_server_ready &&
  kill -0 "${CORRAL_SERVER_PID}" 2>/dev/null; then
  echo "PING -> $(redis-cli -h 127.0.0.1 -p "${RESP_PORT}" ping)"
  for path in /healthz /readyz /readyz/database; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${HTTP_PORT}${path}")
    echo "GET ${path} -> ${code}"
  done
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${HTTP_PORT}/readyz") == 200 ]] ||
    fail "/readyz is not 200 while only the database is down"
  info=$(redis-cli -h 127.0.0.1 -p "${RESP_PORT}" info server | tr -d '\r')
  grep -E '^(redis_version|corral_version|corral_commit):' <<<"${info}"
  grep -qx "corral_commit:${commit}" <<<"${info}" || fail "INFO has no corral_commit:${commit}"
  kill -TERM "${CORRAL_SERVER_PID}"
  if corral_wait_until 20 "corral-server to exit after SIGTERM" _corral_server_gone; then
    status=0
    wait "${CORRAL_SERVER_PID}" || status=$?
    CORRAL_SERVER_PID=""
    echo "SIGTERM -> exit status ${status}"
    ((status == 0)) || fail "corral-server exited ${status} after SIGTERM"
  else
    fail "corral-server did not exit within 20 s of SIGTERM"
  fi
else
  tail -n 20 "${WORK}/server.log" >&2
  fail "corral-server from the image did not answer PING and /healthz"
fi

if ((failures > 0)); then
  corral_die "${failures} check(s) failed; the image is ${tags[*]}"
fi
printf '\n%s\n' "image.sh: built and checked ${tags[*]} (${size}) in $((SECONDS - START)) s"
