#!/usr/bin/env bash
# Installs Debian's `prometheus` for the observability test
# (crates/cli/tests/observability/): the package's binary is unpacked into
# $STREETSCOPE_CACHE/prometheus (outside the clone) with `apt-get download` and
# `dpkg-deb -x`, so no service is installed or started and no root is needed.
# A system-wide /usr/bin/prometheus is used as it is. Idempotent.
set -euo pipefail
CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
ROOT=$CACHE/prometheus
log() { printf '\033[1m[prometheus]\033[0m %s\n' "$*" >&2; }

if [ -x /usr/bin/prometheus ] || [ -x "$ROOT/usr/bin/prometheus" ]; then
  exit 0
fi
log "unpacking Debian's prometheus into $ROOT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }; })
mkdir -p "$ROOT.tmp"
dpkg-deb -x "$tmp"/prometheus_*.deb "$ROOT.tmp"
rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
"$ROOT/usr/bin/prometheus" --version | head -1 >&2
