#!/usr/bin/env bash
# Installs Debian's prometheus package (prometheus and promtool) when they are missing:
# the tests run a real Prometheus (hack/promtest). No service is started here.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "prometheus and promtool are missing: install Debian's prometheus package (apt-get install prometheus)" >&2
	exit 1
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
