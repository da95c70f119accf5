#!/usr/bin/env bash
# The detector against the limit, and what each ONNX Runtime setting is worth.
#
#   scripts/bench-detect.sh [ROUNDS] [MODEL]
#
# 1. Settings, one at a time (crates/detect/examples/session_options.rs): bare
#    `session.run` of the same model and input in one session per setting, plus
#    ONNX Runtime's Python binding as a child process, measured round-robin
#    (A B C ... A B C ...) so that the shared machine's noise hits all alike;
#    medians of rounds.
# 2. `streetscope bench detect`: the detect stage against the best of its own bare
#    run and the Python binding's, side by side (JPEG frames as the pods get them,
#    with spinning off and on; then RGB frames as `streetscope run` passes them).
# The machine's load is printed before and after each part: quote it with the figures.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${1:-6}
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}
MODEL=${2:-${STREETSCOPE_MODEL:-$STREETSCOPE_CACHE/models/yolo11n_det_u8.onnx}}
T=$(nproc)

log() { printf '\033[1m[bench-detect]\033[0m %s\n' "$*" >&2; }

scripts/python-env.sh >/dev/null
cargo build --release --quiet -p streetscope-detect --example session_options
cargo build --release --quiet -p streetscope

log "settings (threads=$T unless named; ort's defaults otherwise: CPU arena off, spinning on); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$CARGO_TARGET_DIR/release/examples/session_options" "$MODEL" "$ROUNDS" 5 \
  "python:$T" "threads=$T" "threads=$T,arena=1" "threads=$T,arena=1,log=warning" "threads=$T,arena=1,spin=0" \
  "threads=$T,arena=1,pattern=0" "threads=$T,arena=1,opt=1" "threads=1,arena=1"
log "load $(cut -d' ' -f1-3 /proc/loadavg)"

log "bench detect (spinning off, the default, then on); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$CARGO_TARGET_DIR/release/streetscope" bench detect --model "$MODEL" --frames 30 --repeat 5
"$CARGO_TARGET_DIR/release/streetscope" bench detect --model "$MODEL" --frames 30 --repeat 5 --spin
log "bench detect on RGB frames (what streetscope run passes in one process); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$CARGO_TARGET_DIR/release/streetscope" bench detect --model "$MODEL" --frames 30 --repeat 5 --raw
log "load $(cut -d' ' -f1-3 /proc/loadavg)"
