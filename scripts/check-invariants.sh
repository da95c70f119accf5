#!/usr/bin/env bash
# The crate boundaries of docs/ARCHITECTURE.md, checked with `cargo tree -i`:
# only ingest links GStreamer (and its satellite and -sys crates), only detect
# links ONNX Runtime, only transport links rdkafka (and librdkafka's -sys
# crate); contracts does no IO and pulls no runtime; aggregate stays pure; the
# release binary links no test harness.
# A `cargo tree` that fails fails the check (a broken check must not pass).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
tree() { # cargo tree with its failure made loud
  local out
  if ! out=$(cargo tree --locked "$@" 2>&1); then
    echo "cargo tree $* failed:" >&2
    echo "$out" >&2
    exit 2
  fi
  printf '%s\n' "$out"
}
# The workspace crates that depend on `pkg` directly.
direct_users() {
  local pkg=$1
  # `cargo tree -i` fails when the package is not in the graph at all: nobody uses it.
  if ! cargo tree --locked -e normal -p "$pkg" --depth 0 >/dev/null 2>&1; then
    return 0
  fi
  tree -e normal -i "$pkg" --prefix none --depth 1 | tail -n +2 | awk '{print $1}' | grep '^streetscope' | sort -u || true
}
only() { # allowed-crate package...
  local allowed=$1
  shift
  for pkg in "$@"; do
    for u in $(direct_users "$pkg"); do
      if [ "$u" != "$allowed" ]; then
        echo "invariant broken: $u depends on $pkg directly (only $allowed may)"
        fail=1
      fi
    done
  done
}
only streetscope-ingest gstreamer gstreamer-app gstreamer-base gstreamer-video gstreamer-sys gstreamer-app-sys \
  gstreamer-base-sys gstreamer-video-sys
only streetscope-detect ort ort-sys
only streetscope-transport rdkafka rdkafka-sys

# Nothing in these crates' whole normal graph may be an IO or runtime crate.
forbid() { # crate pattern why
  local crate=$1 pattern=$2 why=$3 found
  found=$(tree -e normal -p "$crate" --prefix none | awk '{print $1}' | grep -xE "$pattern" | sort -u || true)
  if [ -n "$found" ]; then
    echo "invariant broken: $crate pulls in $(echo "$found" | tr '\n' ' ')($why)"
    fail=1
  fi
}
forbid streetscope-contracts 'gstreamer.*|ort.*|tokio|async-channel|rdkafka.*|hyper.*|axum' "contracts does no IO"
forbid streetscope-aggregate 'gstreamer.*|ort.*|tokio|rdkafka.*|hyper.*|axum' "the analytics are pure"
# Test and benchmark harnesses never ship in the release binary.
forbid streetscope 'streetscope-testbroker' "a test harness in the release binary"
# contracts reads no files and opens no sockets itself.
if grep -rnE 'std::(fs|net)::|File::open|read_to_string\(' crates/contracts/src; then
  echo "invariant broken: streetscope-contracts does IO (above); read the text in the caller"
  fail=1
fi
[ $fail = 0 ] && echo "crate invariants hold"
exit $fail
