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

# The pinned sources: the .crate files of crates.io (cargo's registry cache
# when it has them, else downloaded from crates.io), checked against their
# SHA-256 (the checksums of the crates.io index).
declare -A SHA256=(
  [tansu]=4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
  [tansu-broker]=93c1e91b40c2a706dfdbe9a795c08c70918c874ad23f6e0e87564cc0a180e720
)
crate_file() {
  local name=$1 f
  for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$name-$TANSU_VERSION.crate" "$ROOT/crates/$name-$TANSU_VERSION.crate"; do
    if [ -f "$f" ] && echo "${SHA256[$name]}  $f" | sha256sum --check --status; then
      echo "$f"
      return 0
    fi
  done
  mkdir -p "$ROOT/crates"
  f=$ROOT/crates/$name-$TANSU_VERSION.crate
  curl -fsSL --retry 3 -o "$f.part" "https://static.crates.io/crates/$name/$name-$TANSU_VERSION.crate"
  echo "${SHA256[$name]}  $f.part" | sha256sum --check --status || {
    echo "$name-$TANSU_VERSION.crate: checksum mismatch" >&2
    return 1
  }
  mv -f "$f.part" "$f"
  echo "$f"
}
TANSU_CRATE=$(crate_file tansu)
BROKER_CRATE=$(crate_file tansu-broker)

# A fixed source path, so that the build dir's artifacts of the other crates
# stay valid across rebuilds (a path crate's identity includes its path).
SRC=$ROOT/src
rm -rf "$SRC"
mkdir -p "$SRC"
tar -xzf "$TANSU_CRATE" -C "$SRC"
tar -xzf "$BROKER_CRATE" -C "$SRC"
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
