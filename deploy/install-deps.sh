#!/usr/bin/env bash
# Installs the Debian 12 packages corral needs to build, test, benchmark and run the demo. Quick
# when all are present (nothing is fetched); installs only what is missing, and starts no services.
# Usage: deploy/install-deps.sh   (as root, or through sudo)
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
source "${DEPLOY_DIR}/lib.sh"

PACKAGES=(
  # Build
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-program-options1.81-dev
  libpqxx-dev libhiredis-dev nlohmann-json3-dev libssl-dev  # libssl-dev: auth/ hashes with libcrypto
  libjemalloc-dev  # corral-server's allocator (cache-server/CMakeLists.txt)
  libgtest-dev libgmock-dev libbenchmark-dev
  # Sanitizer and fuzz phases: libFuzzer needs clang (its runtime is in libclang-rt-14-dev);
  # llvm-14 brings llvm-symbolizer for readable sanitizer stacks. GCC's ASan/UBSan/TSan runtimes
  # come with build-essential.
  clang-14 llvm-14 libclang-rt-14-dev
  clang-format  # deploy/check-source.sh: CI fails on a file clang-format would change
  git  # check-source.sh lists the tracked files
  # Servers the tests and the demo run locally (pg_stat_statements is in postgresql-contrib)
  postgresql-15 postgresql-contrib redis-server redis-tools pgbouncer
  prometheus  # promtool: the tests check /metrics with "promtool check metrics"
  # Used by the scripts and tests: curl, ps/pgrep, ss; openssl makes tls_test's certificates
  curl procps iproute2 openssl
  python3-redis  # redis-py, one of the client libraries tests/clients drives
  # deploy/image.sh: a Debian 12 base from the archive and an image built on it, with neither a
  # registry nor an OCI runtime (buildah bud --isolation chroot)
  buildah debootstrap
)
# kubectl renders deploy/k8s in deploy/run-tests.sh (kubectl kustomize). Debian's
# kubernetes-client (1.20, kustomize v2) conflicts with a kubectl from another package, so it is
# installed only when no kubectl is on PATH.
command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)

is_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == ii* ]]
}

missing=()
for package in "${PACKAGES[@]}"; do
  is_installed "${package}" || missing+=("${package}")
done
if ((${#missing[@]} == 0)); then
  corral_log "all ${#PACKAGES[@]} packages are installed"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || corral_die "not root and no sudo; cannot install: ${missing[*]}"
  sudo=(sudo)
fi

# Packages such as postgresql-15, redis-server and pgbouncer start a service when installed, which
# would take the default ports. Unless the machine already has a policy, forbid service starts for
# the duration of the install (exit 101 = "action not allowed", see invoke-rc.d(8)).
POLICY=/usr/sbin/policy-rc.d
own_policy=0
remove_policy() {
  if ((own_policy)); then
    "${sudo[@]}" rm -f "${POLICY}"
  fi
}
trap remove_policy EXIT
if [[ ! -e ${POLICY} ]]; then
  printf '#!/bin/sh\n# Written by corral deploy/install-deps.sh during an install.\nexit 101\n' |
    "${sudo[@]}" tee "${POLICY}" >/dev/null
  "${sudo[@]}" chmod 755 "${POLICY}"
  own_policy=1
fi

corral_log "installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"

for package in "${missing[@]}"; do
  is_installed "${package}" || corral_die "${package} did not install"
done
corral_log "installed: ${missing[*]}"
