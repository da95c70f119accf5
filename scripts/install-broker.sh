#!/usr/bin/env bash
# Installs the Kafka-protocol broker of the tests: tansu (Apache-2.0, written in
# Rust, on crates.io), with its in-memory and SQLite stores, into
# $STREETSCOPE_CACHE/tansu (outside the clone, so later clones reuse it).
#
# The pinned crate source is built with the patches in scripts/broker-patches/
# (each one documented in its header; docs/distributed.md, "The test broker").
# Idempotent: the installed broker is keyed by version + features + patches
# ($ROOT/bin/tansu.key), so an unpatched or differently patched broker is
# rebuilt once and later runs return at once. The build keeps its own target
# dir in $ROOT/build: the first build takes 15-30 minutes on two cores, a
# rebuild after a patch change only recompiles tansu's own crates.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
TANSU_VERSION=0.6.0
FEATURES=dynostore,libsql
ROOT=$CACHE/tansu
BIN=$ROOT/bin/tansu
STAMP=$ROOT/bin/tansu.key
log() { printf '\033[1m[broker]\033[0m %s\n' "$*" >&2; }

shopt -s nullglob
PATCHES=(scripts/broker-patches/tansu-"$TANSU_VERSION"-*.patch)
shopt -u nullglob
KEY=$({
  echo "tansu $TANSU_VERSION features $FEATURES"
  for p in "${PATCHES[@]}"; do
    echo "patch $(basename "$p")"
    cat "$p"
  done
} | sha256sum | cut -c1-16)

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$KEY" ]; then
  exit 0
fi
log "building tansu $TANSU_VERSION with ${#PATCHES[@]} patch(es) (key $KEY) into $ROOT (once; 15-30 minutes on two cores for a first build)"
mkdir -p "$ROOT/bin"

# The pinned sources: the .crate files in cargo's registry cache, fetched
# through crates.io when missing.
REGISTRY_CACHE=${CARGO_HOME:-$HOME/.cargo}/registry/cache
crate_file() {
  local f
  for f in "$REGISTRY_CACHE"/*/"$1-$TANSU_VERSION.crate"; do
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  return 1
}
if ! crate_file tansu >/dev/null || ! crate_file tansu-broker >/dev/null; then
  fetch=$(mktemp -d)
  mkdir "$fetch/src"
  : >"$fetch/src/lib.rs"
  cat >"$fetch/Cargo.toml" <<EOF
[package]
name = "tansu-source-fetch"
version = "0.0.0"
edition = "2021"

[dependencies]
tansu = { version = "=$TANSU_VERSION", default-features = false }
tansu-broker = { version = "=$TANSU_VERSION", default-features = false }
EOF
  cargo fetch --manifest-path "$fetch/Cargo.toml" --quiet
  rm -rf "$fetch"
fi

# A fixed source path, so that the build dir's artifacts of the other crates
# stay valid across rebuilds (a path crate's identity includes its path).
SRC=$ROOT/src
rm -rf "$SRC"
mkdir -p "$SRC"
tar -xzf "$(crate_file tansu)" -C "$SRC"
tar -xzf "$(crate_file tansu-broker)" -C "$SRC"
for p in "${PATCHES[@]}"; do
  log "applying $p"
  patch -d "$SRC" -p1 --forward --quiet <"$p"
done
cat >>"$SRC/tansu-$TANSU_VERSION/Cargo.toml" <<EOF

[patch.crates-io]
tansu-broker = { path = "../tansu-broker-$TANSU_VERSION" }
EOF
# Cargo.lock as published; cargo changes only the patched crate's entry.
(cd "$SRC/tansu-$TANSU_VERSION" &&
  cargo build --release --quiet --bin tansu --features "$FEATURES" --target-dir "$ROOT/build")
install -m 0755 "$ROOT/build/release/tansu" "$BIN.new"
mv -f "$BIN.new" "$BIN"
echo "$KEY" >"$STAMP"
"$BIN" --version >&2
