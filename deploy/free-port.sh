#!/usr/bin/env bash
# Prints a free TCP port on 127.0.0.1, or with COUNT the first of COUNT consecutive free ports.
# Usage: deploy/free-port.sh [COUNT]
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

count=${1:-1}
[[ ${count} =~ ^[1-9][0-9]*$ ]] || corral_die "usage: ${0##*/} [COUNT]"
corral_free_port_range "${count}"
