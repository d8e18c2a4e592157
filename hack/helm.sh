#!/usr/bin/env bash
# Builds helm from the Go module proxy once per machine and prints its path. Like the
# control plane, it is cached outside the clone and built into a temporary file that is
# renamed into place, under a lock.
set -euo pipefail

HELM_VERSION=v3.22.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${KADET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kadet}
dest="$cache_root/helm-$HELM_VERSION/helm"

if [ -x "$dest" ]; then echo "$dest"; exit 0; fi
mkdir -p "$(dirname "$dest")"
exec 9>"$cache_root/.helm.lock"
flock 9
if [ -x "$dest" ]; then echo "$dest"; exit 0; fi
echo "helm: building $HELM_VERSION (about 3 min cold)" >&2
tmp=$(mktemp "$dest.XXXXXX")
trap 'rm -f "$tmp"' EXIT
(cd "$here/tools/helm" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$tmp" helm.sh/helm/v3/cmd/helm)
chmod +x "$tmp"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
