#!/usr/bin/env bash
# Side-by-side benchmark of Streetscope's tracking and line counting against what
# Python users run today (the `trackers` package's ByteTrack with supervision's
# LineZone), on the same simulated detections, in one run: throughput per core,
# counting accuracy per noise level, and how many frames after the true crossing
# each count comes. Results are in docs/benchmarks.md and docs/accuracy.md.
#
#   scripts/bench-trackers.sh [MINUTES] [REPEAT]     # default: 10 simulated minutes, 3 runs
#
# Both sides run on one thread, alternately per noise level; the figures are
# medians. Files go to $STREETSCOPE_CACHE/bench/trackers.
set -euo pipefail

cd "$(dirname "$0")/.."
MINUTES=${1:-10}
REPEAT=${2:-3}
LEVELS=(none typical heavy)
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}
OUT=$STREETSCOPE_CACHE/bench/trackers
mkdir -p "$OUT"

log() { printf '\033[1m[bench-trackers]\033[0m %s\n' "$*" >&2; }

PY=$(scripts/python-env.sh bench)
log "building the Rust side"
cargo build --release --quiet -p streetscope-aggregate --example side_by_side
BIN=$CARGO_TARGET_DIR/release/examples/side_by_side

for level in "${LEVELS[@]}"; do
  log "$level: Streetscope ($REPEAT runs), writing the detections"
  "$BIN" --out "$OUT" --minutes "$MINUTES" --repeat "$REPEAT" --levels "$level"
  log "$level: trackers ByteTrack + supervision LineZone ($REPEAT runs)"
  "$PY" tools/python/bench_trackers.py run "$OUT" "$level" --repeat "$REPEAT"
done
log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" tools/python/bench_trackers.py report "$OUT" "${LEVELS[@]}"
