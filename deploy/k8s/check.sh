#!/usr/bin/env bash
# Renders deploy/k8s (the base layout) and deploy/k8s/scale-out (the shared Redis tier) with
# `kubectl kustomize` and checks what the manifests promise: the probes (readiness /readyz, liveness
# /healthz), no preStop sleep (corral drains itself), a termination grace period longer than
# corral's drain grace + shutdown timeout, a readiness probe that turns within the drain grace, a
# PodDisruptionBudget, and a corral.json that corral-server accepts. For scale-out also: several
# corral pods, a Redis Service that corral.json's "redis" section names, and a corral.json that is
# the base's plus that section and nothing else. Both run deploy/image.sh's image
# (CORRAL_IMAGE_NAME, default localhost/corral/corral-server, tagged with the binary's version) as
# the image's user (uid 65532) with its entrypoint (args only, no command).
# Usage: deploy/k8s/check.sh [CORRAL_SERVER_BINARY]   (without it, the config check is skipped and
# the image's tag need only look like a version)
# Works with Debian 12's kubectl 1.20 (kustomize v2) and newer ones; needs no cluster.
set -euo pipefail

K8S_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVER=${1:-}
IMAGE_NAME=${CORRAL_IMAGE_NAME:-localhost/corral/corral-server}
failures=0

# The image tag deploy/image.sh gives the binary: its version ("corral-server 0.1.0 (commit C)").
image_tag='[0-9]+\.[0-9]+\.[0-9]+'
if [[ -n ${SERVER} ]]; then
  image_tag=$("${SERVER}" --version | awk '{ print $2 }')
  image_tag=${image_tag//./\\.}
fi

layout="" # the layout being checked, for messages

fail() {
  echo "deploy/k8s${layout:+ (${layout})}: $*" >&2
  failures=$((failures + 1))
}

command -v kubectl >/dev/null || {
  echo "deploy/k8s: kubectl not found (deploy/install-deps.sh installs kubernetes-client)" >&2
  exit 1
}

# render DIR: sets `rendered` to `kubectl kustomize DIR` (kustomize's deprecation warnings for
# `bases:`, which kubectl 1.20 needs, are dropped).
render() {
  local errors
  errors=$(mktemp /tmp/corral-k8s-errors.XXXXXX)
  if ! rendered=$(kubectl kustomize "$1" 2>"${errors}"); then
    grep -v "^# Warning: '.*' is deprecated" "${errors}" >&2 || true
    rm -f "${errors}"
    echo "deploy/k8s: kubectl kustomize $1 failed" >&2
    exit 1
  fi
  rm -f "${errors}"
}

# document KIND NAME: the rendered document of that kind and metadata.name.
document() {
  awk -v kind="$1" -v name="$2" '
    function flush() {
      if (doc ~ ("(^|\n)kind: " kind "\n") && doc ~ ("\n  name: " name "\n")) { printf "%s", doc; found = 1 }
      doc = ""
    }
    $0 == "---" { flush(); next }
    { doc = doc $0 "\n" }
    END { flush(); exit found ? 0 : 1 }' <<<"${rendered}"
}

# block KEY: the lines nested under the first "KEY:" line of stdin.
block() {
  awk -v key="$1" '
    !found && $0 ~ ("^ *" key ":( [|>][-+]?)?$") { found = 1; match($0, /^ */); indent = RLENGTH; next }
    found { match($0, /^ */); if (RLENGTH <= indent) exit; print }'
}

# field NAME: the value of the first "NAME: value" line of stdin (quotes removed).
field() {
  sed -n "s/^ *-\{0,1\} *$1: *//p" | head -n 1 | tr -d '"' || true
}

# check_layout NAME: the checks every layout must pass, on `rendered`; sets `config` (corral.json)
# and the drain figures for the summary.
check_layout() {
  local deployment readiness liveness configmap shutdown period_s threshold probe_timeout_s pdb
  local out config_file
  layout=$1
  deployment=$(document Deployment corral) || fail "no Deployment named corral"
  readiness=$(block readinessProbe <<<"${deployment}")
  liveness=$(block livenessProbe <<<"${deployment}")
  [[ $(field path <<<"${readiness}") == /readyz ]] ||
    fail "the readiness probe must be GET /readyz (got '$(field path <<<"${readiness}")')"
  [[ $(field path <<<"${liveness}") == /healthz ]] ||
    fail "the liveness probe must be GET /healthz (got '$(field path <<<"${liveness}")')"
  image=$(field image <<<"${deployment}")
  [[ ${image} =~ ^${IMAGE_NAME//./\\.}:${image_tag}$ ]] ||
    fail "the corral container's image is '${image}', not deploy/image.sh's ${IMAGE_NAME}:TAG" \
      "(TAG the binary's version; base/kustomization.yaml images:)"
  if grep -q "^ *command:" <<<"${deployment}"; then
    fail "the corral container sets command: the image's entrypoint is corral-server; set args"
  fi
  [[ $(field runAsUser <<<"${deployment}") == 65532 ]] ||
    fail "the pod must run as uid 65532, deploy/Containerfile's corral user"
  if grep -q "preStop:" <<<"${deployment}"; then
    fail "a preStop hook is set: corral's shutdown.drain_grace_ms replaces the preStop sleep"
  fi

  configmap=$(document ConfigMap corral-config) || fail "no ConfigMap named corral-config"
  # The corral.json block scalar, without its indentation.
  config=$(block corral.json <<<"${configmap}" | sed 's/^    //')
  [[ -n ${config} ]] || fail "the ConfigMap has no corral.json"
  # The "shutdown" object's text ("redis" has a timeout_ms of its own).
  shutdown=$(awk '/"shutdown": *\{/ { on = 1 } on { print } on && /}/ { exit }' <<<"${config}")
  number() { grep -o "\"$1\": *[0-9]*" <<<"${shutdown}" | grep -o '[0-9]*$' | head -n 1 || true; }
  grace_ms=$(number drain_grace_ms)
  timeout_ms=$(number timeout_ms)
  [[ -n ${grace_ms} && ${grace_ms} -gt 0 ]] ||
    fail "corral.json must set shutdown.drain_grace_ms (> 0) behind a Service"
  timeout_ms=${timeout_ms:-5000}
  grace_ms=${grace_ms:-0}

  termination_s=$(field terminationGracePeriodSeconds <<<"${deployment}")
  termination_s=${termination_s:-30} # the Kubernetes default
  if ((termination_s * 1000 <= grace_ms + timeout_ms)); then
    fail "terminationGracePeriodSeconds (${termination_s}) must exceed drain_grace_ms + timeout_ms" \
      "(${grace_ms} + ${timeout_ms} ms)"
  fi
  period_s=$(field periodSeconds <<<"${readiness}")
  threshold=$(field failureThreshold <<<"${readiness}")
  probe_timeout_s=$(field timeoutSeconds <<<"${readiness}")
  period_s=${period_s:-10} threshold=${threshold:-3} probe_timeout_s=${probe_timeout_s:-1}
  if (((period_s * threshold + probe_timeout_s) * 1000 > grace_ms)); then
    fail "the readiness probe needs up to $((period_s * threshold + probe_timeout_s)) s to see" \
      "/readyz turn 503, longer than drain_grace_ms (${grace_ms} ms)"
  fi

  pdb=$(document PodDisruptionBudget corral) || fail "no PodDisruptionBudget named corral"
  if [[ -z $(field maxUnavailable <<<"${pdb:-}") && -z $(field minAvailable <<<"${pdb:-}") ]]; then
    fail "the PodDisruptionBudget sets neither maxUnavailable nor minAvailable"
  fi

  if [[ -n ${SERVER} && -n ${config} ]]; then
    config_file=$(mktemp /tmp/corral-k8s-config.XXXXXX.json)
    printf '%s\n' "${config}" >"${config_file}"
    # The secrets deployment.yaml passes from the Secret corral-auth, stood in for here.
    if ! out=$(CORRAL_PASSWORD=check-password CORRAL_TOKEN=check-token \
      "${SERVER}" --check-config "${config_file}" 2>&1); then
      fail "corral-server rejects the ${layout} ConfigMap's corral.json: ${out}"
    fi
    rm -f "${config_file}"
  fi
}

# check_scale_out BASE_CONFIG: the overlay runs several corral pods that share a Redis: corral.json
# is the base's plus a "redis" section whose nodes include a Service of the overlay.
check_scale_out() {
  local base_config=$1 replicas redis_section host port service
  replicas=$(field replicas <<<"$(document Deployment corral)")
  ((${replicas:-1} >= 2)) || fail "the corral Deployment needs several replicas"
  redis_section=$(awk '/^  "redis": *\{/ { on = 1 } on { print } on && /^  }/ { exit }' \
    <<<"${config}")
  [[ -n ${redis_section} ]] || fail "corral.json has no \"redis\" section"
  if [[ $(awk '/^  "redis": *\{/ { on = 1 } !on { print } on && /^  }/ { on = 0 }' \
    <<<"${config}") != "${base_config}" ]]; then
    fail "corral.json differs from the base's in more than its \"redis\" section;" \
      "update scale-out/configmap-redis.yaml"
  fi
  # The first node, "host:port", must be a Service here with that port.
  read -r host port < <(grep -o '"nodes": *\[ *"[^"]*"' <<<"${redis_section}" |
    sed 's/.*"\([^"]*\)"$/\1/; s/:/ /') || true
  if [[ -z ${host:-} ]]; then
    fail "redis.nodes names no node"
  elif ! service=$(document Service "${host%%.*}"); then
    fail "redis.nodes names ${host}, but the overlay has no Service ${host%%.*}"
  elif ! grep -Eq "^ *(- )?port: ${port}\$" <<<"${service}"; then
    fail "the Service ${host%%.*} has no port ${port}"
  fi
}

notes=()
render "${K8S_DIR}"
check_layout base
base_config=${config}
render "${K8S_DIR}/scale-out"
check_layout scale-out
check_scale_out "${base_config}"

if ((failures > 0)); then
  echo "deploy/k8s: ${failures} check(s) failed" >&2
  exit 1
fi
for note in "${notes[@]}"; do
  echo "deploy/k8s: note: ${note}"
done
echo "deploy/k8s: rendered base and scale-out; image ${image}; readiness /readyz, liveness /healthz," \
  "drain grace ${grace_ms} ms + timeout ${timeout_ms} ms < terminationGracePeriodSeconds ${termination_s} s"
