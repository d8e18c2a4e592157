#!/usr/bin/env bash
# The operator at scale with real pods: N Detectors (inline CSV, a small dense
# autoencoder) applied at once to the local cluster of `make demo`, each trained by a
# real training pod and served by a real scoring pod; prints the time until all are
# Ready and the manager's and the node's memory, then deletes them.
#   make demo && hack/bench/local-scale/run.sh [N]   (N defaults to 100)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
n=${1:-100}
ns=local-scale
export KUBECONFIG=${KADET_DEMO_DIR:-$root/.demo}/cluster/kubeconfig
[ -f "$KUBECONFIG" ] || { echo "no local cluster: run make demo first" >&2; exit 1; }
kubectl=$("$root/hack/controlplane.sh")/kubectl

"$kubectl" delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
"$kubectl" create namespace "$ns" >/dev/null
csv=$(awk 'BEGIN { srand(7); print "a,b,c,d"; for (i = 0; i < 200; i++) printf "%.3f,%.3f,%.3f,%.3f\n", rand(), rand(), 2*rand(), rand()+1 }')
manifests=$(mktemp)
trap 'rm -f "$manifests"' EXIT
for i in $(seq -w 1 "$n"); do
  cat >> "$manifests" <<YAML
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d$i-csv}
data:
  data.csv: |
$(sed 's/^/    /' <<<"$csv")
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: d$i}
spec:
  csv: {configMapKeyRef: {name: d$i-csv, key: data.csv}}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: d$i}
spec:
  dataSourceRef: {name: d$i}
  model: {type: Autoencoder, hiddenLayers: [8], latentSize: 2}
  training: {epochs: 5, batchSize: 32}
YAML
done
start=$(date +%s.%N)
"$kubectl" apply -n "$ns" -f "$manifests" >/dev/null
applied=$(date +%s.%N)
ready=0
while [ "$ready" -lt "$n" ]; do
  sleep 1
  ready=$("$kubectl" get detectors -n "$ns" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  now=$(date +%s.%N)
  if awk -v a="$now" -v b="$start" 'BEGIN { exit !(a - b > 1800) }'; then echo "only $ready of $n Ready after 30 min" >&2; exit 1; fi
done
end=$(date +%s.%N)
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
manager=$(cat "${KADET_DEMO_DIR:-$root/.demo}/manager.pid" 2>/dev/null || true)
printf 'applied in %.1f s; scoring pods running: %s\n' "$(awk -v a="$applied" -v b="$start" 'BEGIN { print a - b }')" \
  "$("$kubectl" get pods -n "$ns" -l app.kubernetes.io/component=scoring --field-selector=status.phase=Running --no-headers | wc -l)"
[ -n "$manager" ] && echo "manager RSS: $(rss "$manager") MB"
printf 'local scale: %d detectors ready in %.1f s\n' "$n" "$(awk -v a="$end" -v b="$start" 'BEGIN { print a - b }')"
"$kubectl" delete namespace "$ns" --wait=false >/dev/null
