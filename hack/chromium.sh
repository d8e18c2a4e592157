#!/usr/bin/env bash
# Installs Debian's chromium package when it is missing: the tests look at pages kadet
# serves in a real headless browser (the model page's screenshot).
set -euo pipefail
if command -v chromium >/dev/null; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
	exit 1
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
