#!/usr/bin/env bash
# The crate boundaries of ARCHITECTURE.md, checked with `cargo tree -i`:
# only ingest links GStreamer, only detect links ONNX Runtime, contracts does no IO.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
only() { # package allowed-direct-dependent
  local pkg=$1 allowed=$2
  local users
  users=$(cargo tree --locked -e normal -i "$pkg" --prefix none --depth 1 2>/dev/null | tail -n +2 | awk '{print $1}' | grep '^streetscope' | sort -u || true)
  for u in $users; do
    if [ "$u" != "$allowed" ]; then echo "invariant broken: $u depends on $pkg directly (only $allowed may)"; fail=1; fi
  done
}
only gstreamer streetscope-ingest
only ort streetscope-detect
only rdkafka streetscope-transport
for forbidden in gstreamer ort tokio async-channel; do
  if cargo tree --locked -e normal -p streetscope-contracts --prefix none | awk '{print $1}' | grep -qx "$forbidden"; then
    echo "invariant broken: streetscope-contracts depends on $forbidden"; fail=1
  fi
done
if cargo tree --locked -e normal -p streetscope-aggregate --prefix none | awk '{print $1}' | grep -qxE 'gstreamer|ort|tokio|rdkafka'; then
  echo "invariant broken: streetscope-aggregate pulls in IO crates"; fail=1
fi
[ $fail = 0 ] && echo "crate invariants hold"
exit $fail
