#!/usr/bin/env bash
# Installs the Kafka-protocol broker of the tests: tansu (Apache-2.0, written in
# Rust, on crates.io), with its in-memory and SQLite stores, into
# $STREETSCOPE_CACHE/tansu (outside the clone, so later clones reuse it).
# Idempotent: an installed broker of the right version is not built again.
# The first build takes 15-20 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
TANSU_VERSION=0.6.0
ROOT=$CACHE/tansu
BIN=$ROOT/bin/tansu
log() { printf '\033[1m[broker]\033[0m %s\n' "$*" >&2; }

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  exit 0
fi
log "building tansu $TANSU_VERSION into $ROOT (once; 15-20 minutes on two cores)"
mkdir -p "$ROOT"
# Its own target dir: the build never touches the project's.
cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
  --root "$ROOT" --target-dir "$ROOT/build" --quiet
"$BIN" --version >&2
