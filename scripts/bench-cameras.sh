#!/usr/bin/env bash
# Live cameras per core INTO Kafka, measured: N RTSP cameras (1080p25 H.264 from
# the ingest crate's test server, one server process each) sampled to 5 frames/s,
# letterboxed, JPEG-encoded and produced to the frames topic as an ingest pod
# does (its camera queues and frames publisher), by ONE process pinned to ONE
# core; an N sweep. Per N: CPU per camera, and whether every window delivered
# every frame the sampler owed (nothing dropped from the queues, nothing lost by
# the producer, at most one frame a camera short at the window's edges).
#
#   scripts/bench-cameras.sh [SWEEP] [REPEAT] [-- extra bench cameras flags]
#   scripts/bench-cameras.sh 6,8,10,12 3
#   scripts/bench-cameras.sh 8,10 2 -- --clip ~/.cache/streetscope/bench/two_way_720p25.mp4
#
# The broker is the test broker (tansu, SQLite store in a temporary folder,
# removed at exit), started here on 127.0.0.1. The last CPU runs the bench; the
# RTSP servers and the broker run on the others (taskset), so that the core
# measured carries ingest alone (other processes on the machine can still share
# it: the load average is printed with every run; quote it). Bounded: each
# window is --seconds (default 12) long, the whole run a few minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
SWEEP=${1:-6,8,10,12}
REPEAT=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}
BIN=${STREETSCOPE_BIN:-$CARGO_TARGET_DIR/release/streetscope}
TANSU=${STREETSCOPE_TANSU:-$STREETSCOPE_CACHE/tansu/bin/tansu}
log() { printf '\033[1m[bench-cameras]\033[0m %s\n' "$*" >&2; }

[ -x "$TANSU" ] || { echo "no $TANSU: run scripts/install-broker.sh" >&2; exit 1; }
# STREETSCOPE_BIN names a built binary (the test servers next to it, in
# examples/): nothing is built then.
if [ -z "${STREETSCOPE_BIN:-}" ]; then
  cargo build --release -p streetscope --bin streetscope
  cargo build --release -p streetscope-ingest --example rtsp_server
fi

LAST=$(( $(nproc) - 1 ))
[ "$LAST" -ge 1 ] || { echo "needs at least two CPUs (one measured, one for servers and broker)" >&2; exit 1; }
OTHERS=0-$(( LAST - 1 ))
DIR=$(mktemp -d /tmp/bench-cameras.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BROKER_PID=
cleanup() {
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(cd "$DIR" && RUST_LOG=warn exec taskset -c "$OTHERS" "$TANSU" broker \
  --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine sqlite://tansu.db --silent >"$DIR/broker.log" 2>&1) &
BROKER_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

log "sweep $SWEEP, $REPEAT runs each; bench on CPU $LAST, servers and broker on $OTHERS; load $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c "$LAST" "$BIN" bench cameras --brokers "127.0.0.1:$PORT" --server-cpus "$OTHERS" \
  --cameras "$SWEEP" --repeat "$REPEAT" --tcp "$@"
log "done; load $(cut -d' ' -f1-3 /proc/loadavg)"
