#!/usr/bin/env bash
# Checks the Helm chart offline with the helm and helm-unittest pinned in
# tools/go.mod: lint (strict, every example values file, on the oldest and a
# current Kubernetes), render (with the ServiceMonitor and PrometheusRule CRDs
# present), refuse impossible values, helm-unittest, and the Go tests in
# tools/ (strict decode into the Kubernetes API types, schema strictness,
# Dockerfile, the alerts' expressions with promtool where it is installed).
#
#   bash tools/chart-check.sh        # from anywhere in the repository
#
# The first run downloads and compiles helm (minutes); later runs take seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/helm/credbot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kube_min=1.27.0 # Chart.yaml kubeVersion
kube_now=1.31.0

step() { printf '\n== %s\n' "$*"; }
fails=0
failed() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# `go tool` builds each tool once and caches the binary; resolve its path so
# every call below does not re-check the build.
tool() {
  local name=$1
  (cd "$root/tools" && timeout 900 go tool "$name" --help >/dev/null 2>&1 || true)
  (cd "$root/tools" && go tool -n "$name")
}
step "build tools (tools/go.mod)"
helm=$(tool helm)
unittest=$(tool helm-unittest)
"$helm" version --short

# Helm without its release ldflags believes Kubernetes is v1.20: always say
# which Kubernetes to lint and render for.
for values in "$chart"/ci/*-values.yaml; do
  for kube in "$kube_min" "$kube_now"; do
    step "lint --strict --kube-version $kube -f ${values#"$root"/}"
    "$helm" lint --strict --kube-version "$kube" "$chart" -f "$values" || failed "lint ${values##*/} on $kube"
  done
  step "template --api-versions monitoring.coreos.com/v1/{ServiceMonitor,PrometheusRule} -f ${values#"$root"/}"
  out=$tmp/${values##*/}.out
  if "$helm" template credbot "$chart" --namespace credbot --kube-version "$kube_now" \
      --api-versions monitoring.coreos.com/v1/ServiceMonitor \
      --api-versions monitoring.coreos.com/v1/PrometheusRule -f "$values" >"$out"; then
    grep -E '^kind: ' "$out" | sort | uniq -c
  else
    failed "template ${values##*/}"
  fi
done
if ! grep -q '^kind: ServiceMonitor$' "$tmp/socket-values.yaml.out"; then
  failed "socket-values.yaml enables the ServiceMonitor, but none was rendered with the CRD present"
fi
if ! grep -q '^kind: PrometheusRule$' "$tmp/socket-values.yaml.out"; then
  failed "socket-values.yaml enables the PrometheusRule, but none was rendered with the CRD present"
fi

# These must fail. Note: `helm lint` reports the chart's own `fail` checks
# only as [INFO] (lint mode), so lint is expected to catch schema errors, and
# `helm template` the impossible combinations.
must_fail() {
  local want=$1; shift
  if "$@" >"$tmp/must-fail.log" 2>&1; then
    failed "expected to fail: $*"
  elif ! grep -q -- "$want" "$tmp/must-fail.log"; then
    cat "$tmp/must-fail.log" >&2
    failed "failed without \"$want\": $*"
  else
    echo "refused as expected: $want"
  fi
}
step "lint must fail on values the schema refuses"
must_fail "additional properties 'replicaCont' not allowed" \
  "$helm" lint --strict --kube-version "$kube_now" "$chart" -f "$chart/ci/http-values.yaml" -f "$chart/tests/values/invalid-schema.yaml"
step "template must fail on impossible values"
must_fail "at most 10 Socket Mode connections" \
  "$helm" template credbot "$chart" --kube-version "$kube_now" -f "$chart/ci/socket-values.yaml" -f "$chart/tests/values/socket-too-many-replicas.yaml"
must_fail "slack: set slack.botToken" \
  "$helm" template credbot "$chart" --kube-version "$kube_now"
must_fail "chart requires kubeVersion" \
  "$helm" template credbot "$chart" --kube-version 1.26.0 -f "$chart/ci/http-values.yaml"

step "package (tests/ stays out of the chart archive)"
"$helm" package "$chart" --destination "$tmp" >/dev/null
if tar -tzf "$tmp"/credbot-*.tgz | grep -q '/tests/'; then
  failed "the packaged chart contains tests/"
else
  tar -tzf "$tmp"/credbot-*.tgz | sed 's/^/  /'
fi

step "helm-unittest helm/credbot"
"$unittest" --color=false "$chart" || failed "helm-unittest"

# -count=1: the test cache does not notice edits to the chart's files.
# (No go vet here: its analysis of helm's and Kubernetes' packages costs
# ~20 s on a cold cache; gofmt in .ci/run covers tools/ already.)
step "go test (tools/)"
(cd "$root/tools" && go test -count=1 ./...) || failed "go test in tools/"

if [ "$fails" -gt 0 ]; then
  echo "chart-check: $fails check(s) failed" >&2
  exit 1
fi
echo "chart-check: all checks passed"
