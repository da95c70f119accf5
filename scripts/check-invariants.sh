#!/usr/bin/env bash
# The crate boundaries of docs/ARCHITECTURE.md, checked with `cargo tree -i`:
# only ingest links GStreamer (and its satellite and -sys crates), only detect
# links ONNX Runtime, only transport links rdkafka (and librdkafka's -sys
# crate); contracts does no IO and pulls no runtime; aggregate stays pure; the
# release binary links no test harness; and ONNX Runtime's version is the
# same wherever it is pinned.
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
# ONNX Runtime's versions are written in several places (the detector's default
# library paths, the set-up, the image build and its Dockerfiles, the Python
# side of the benchmarks): one out of step loads another library than the one
# tested, or none. runtime.rs is the reference.
rs=crates/detect/src/runtime.rs
ort=$(sed -nE 's/^pub const ORT_VERSION: &str = "([0-9.]+)";/\1/p' "$rs")
ov=$(sed -nE 's/^pub const ORT_OPENVINO_VERSION: &str = "([0-9.]+)";/\1/p' "$rs")
if [ -z "$ort" ] || [ -z "$ov" ]; then
  echo "cannot read ORT_VERSION and ORT_OPENVINO_VERSION from $rs" >&2
  exit 2
fi
pinned() { # file regex-with-one-group expected what
  local got
  got=$(grep -oE "$2" "$1" | sed -E "s/$2/\1/" | sort -u | tr '\n' ' ' | sed 's/ $//')
  if [ "$got" != "$3" ]; then
    echo "invariant broken: $1 pins $4 ${got:-nowhere} where $rs says $3"
    fail=1
  fi
}
pinned scripts/setup.sh '^ORT_VERSION=([0-9.]+)' "$ort" "ONNX Runtime"
pinned scripts/setup.sh '^ORT_OPENVINO_VERSION=([0-9.]+)' "$ov" "onnxruntime-openvino"
pinned scripts/build-image.sh '^ORT_VERSION=([0-9.]+)' "$ort" "ONNX Runtime"
pinned scripts/build-image.sh '^ORT_OPENVINO_VERSION=([0-9.]+)' "$ov" "onnxruntime-openvino"
pinned scripts/python-env.sh 'onnxruntime==([0-9.]+)' "$ort" "onnxruntime"
pinned docker/Dockerfile 'ORT_DYLIB_PATH=[^ ]*libonnxruntime[.]so[.]([0-9.]+[0-9])' "$ort" "ORT_DYLIB_PATH's library"
pinned docker/Dockerfile 'ORT_OPENVINO_DYLIB_PATH=[^ ]*libonnxruntime[.]so[.]([0-9.]+[0-9])' "$ov" "ORT_OPENVINO_DYLIB_PATH's library"
pinned docker/Dockerfile.gpu 'libonnxruntime[.]so[.]([0-9.]+[0-9])' "$ort" "the GPU build's library"
pinned scripts/check-gpu-image.sh 'onnxruntime-gpu==([0-9.]+[0-9])' "$ort" "onnxruntime-gpu"

[ $fail = 0 ] && echo "crate invariants hold"
exit $fail
