#!/usr/bin/env bash
# Builds a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) from the Go module proxy, once per machine, and prints the
# folder that holds the binaries. envtest takes it as KUBEBUILDER_ASSETS.
#
# The cache lives outside the clone so fresh clones and CI reuse it; a flock keeps
# concurrent callers from building twice, and the build goes to a temporary folder that
# is renamed into place only when complete, so a killed build never leaves half a cache.
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${KADET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kadet}
dest="$cache_root/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

complete() {
  local b
  for b in "${bins[@]}"; do [ -x "$1/$b" ] || return 1; done
}

if complete "$dest"; then echo "$dest"; exit 0; fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
flock 9
if complete "$dest"; then echo "$dest"; exit 0; fi

tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { echo "controlplane: $*" >&2; }

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
done

log "building etcd $ETCD_VERSION (about 3 min cold)"
(cd "$here/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  log "building $cmd $K8S_VERSION (cold: kube-apiserver about 17 min, the others 4 min together)"
  (cd "$here/tools/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done
"$tmp/kube-apiserver" --version >&2

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
