#!/usr/bin/env bash
# Side by side: `streetscope run` against the Python pipeline a user writes today
# (tools/python/pipeline_reference.py: OpenCV decode, numpy letterbox, ONNX
# Runtime's Python binding, OpenCV NMS, trackers ByteTrack, supervision LineZone)
# on the same 1280x720 25 fps clip, the same model and threads, every frame
# detected. The two alternate (S P S P ...); frames/s and counts against the
# clip's ground truth are reported per run and as medians.
#
#   scripts/bench-pipeline.sh [REPEAT] [MODEL]     # default: 3 runs each, the detector's default model (det_u8)
#   BENCH_SPIN=1 scripts/bench-pipeline.sh ...     # and a third side in each round: streetscope run
#                                                  # with detector.intra_op_spinning = true (ONNX
#                                                  # Runtime's and Python's default), all else as the
#                                                  # quick look (a generated config file)
#   BENCH_PY_MODELS="M1 M2" scripts/bench-pipeline.sh 3 MODEL
#                                                  # the Python side runs each of these models in
#                                                  # each round (default: MODEL alone), e.g.
#                                                  # Streetscope on a CPU variant against Python on
#                                                  # det_fp16 and on the same variant; a side other
#                                                  # than MODEL is named python:<file name>
#   BENCH_PY_OPENVINO=1 scripts/bench-pipeline.sh ...
#                                                  # and, per Python model, the same script on ONNX
#                                                  # Runtime's OpenVINO build (the onnxruntime-openvino
#                                                  # wheel set-up unpacks), as the detector runs by
#                                                  # default on x86-64: side python[:<file>]:openvino
#
# The clip is the two_way test clip re-encoded once to 1280x720 (kept in
# $STREETSCOPE_CACHE/bench/); its counting lines are the ground truth's.
set -euo pipefail

cd "$(dirname "$0")/.."
REPEAT=${1:-3}
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}
MODEL=${2:-${STREETSCOPE_MODEL:-$STREETSCOPE_CACHE/models/yolo11n_det_u8.onnx}}
BIN=${STREETSCOPE_BIN:-$CARGO_TARGET_DIR/release/streetscope}
OUT=$STREETSCOPE_CACHE/bench/pipeline
SRC=test-videos/out/two_way.mp4
TRUTH=test-videos/out/two_way.truth.json
CLIP=$STREETSCOPE_CACHE/bench/two_way_720p25.mp4
THREADS=$(nproc)
mkdir -p "$OUT"

log() { printf '\033[1m[bench-pipeline]\033[0m %s\n' "$*" >&2; }

[ -x "$BIN" ] || { echo "no $BIN: run scripts/setup.sh" >&2; exit 1; }
[ -f "$SRC" ] || { echo "$SRC is missing: run scripts/setup.sh" >&2; exit 1; }
PY=$(scripts/python-env.sh bench)
if [ ! -f "$CLIP" ]; then
  log "re-encoding $SRC to 1280x720 25 fps H.264 -> $CLIP"
  gst-launch-1.0 -q filesrc location="$SRC" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! videoscale \
    ! video/x-raw,width=1280,height=720 ! x264enc bitrate=4000 key-int-max=25 speed-preset=fast \
    ! h264parse ! mp4mux ! filesink location="$CLIP.partial.mp4"
  mv "$CLIP.partial.mp4" "$CLIP"
fi
mapfile -t LINES < <("$PY" -c '
import json, sys
for l in json.load(open(sys.argv[1]))["lines"]:
    print("%s=%s,%s,%s,%s:%s/%s" % (l["name"], *l["start"], *l["end"], l["forward"], l["backward"]))' "$TRUTH")
LINE_ARGS=()
for l in "${LINES[@]}"; do LINE_ARGS+=(--line "$l"); done
SPIN_CONFIG=$OUT/spin.toml
if [ "${BENCH_SPIN:-0}" = 1 ]; then
  # The quick look's camera and lines as a config file, with spinning on.
  "$PY" - "$TRUTH" "$(realpath "$CLIP")" >"$SPIN_CONFIG" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
print('[[cameras]]\nid = "camera-1"\nintersection = "intersection-1"\nsource = %s\nsample_fps = 25.0' % json.dumps(sys.argv[2]))
for l in t["lines"]:
    print('[[cameras.lines]]\nname = %s\nstart = %s\nend = %s\nforward = %s\nbackward = %s'
          % (json.dumps(l["name"]), json.dumps(l["start"]), json.dumps(l["end"]), json.dumps(l["forward"]), json.dumps(l["backward"])))
print('[detector]\nintra_op_spinning = true')
PY
fi

# One JSON line per run of streetscope: frames/s from its summary, crossings.
summary() {
  "$PY" -c '
import json, sys
s = [json.loads(l) for l in open(sys.argv[1])][-1]
s = s.get("summary", s)
c = {}
for row in s["counts"]:
    k = "%s/%s" % (row["line"], row["direction"])
    c[k] = c.get(k, 0) + row["count"]
print(json.dumps({"side": sys.argv[2], "frames": s["frames"], "seconds": s["wall_s"], "fps": s["frames"] / s["wall_s"],
                  "crossings": c, "total_crossings": sum(c.values())}))' "$2" "$1" | tee -a "$OUT/runs.jsonl" >&2
}

log "model $MODEL, $THREADS intra-op threads on both sides, $REPEAT runs each; load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$OUT"/runs.jsonl
for r in $(seq 1 "$REPEAT"); do
  log "run $r: streetscope run"
  "$BIN" run "$CLIP" --model "$MODEL" --sample-fps 25 "${LINE_ARGS[@]}" -o "$OUT/streetscope.jsonl" \
    --log-level warn >/dev/null
  summary streetscope "$OUT/streetscope.jsonl"
  if [ "${BENCH_SPIN:-0}" = 1 ]; then
    log "run $r: streetscope run, intra-op spinning on; load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$BIN" run --config "$SPIN_CONFIG" --model "$MODEL" -o "$OUT/streetscope-spin.jsonl" --log-level warn >/dev/null
    summary streetscope-spin "$OUT/streetscope-spin.jsonl"
  fi
  PROVIDERS=(cpu)
  [ "${BENCH_PY_OPENVINO:-0}" = 1 ] && PROVIDERS+=(openvino)
  for PM in ${BENCH_PY_MODELS:-$MODEL}; do
    for PP in "${PROVIDERS[@]}"; do
      SIDE=python
      [ "$PM" = "$MODEL" ] || SIDE="python:$(basename "$PM")"
      PYENV=()
      if [ "$PP" = openvino ]; then
        SIDE="$SIDE:openvino"
        PYENV=(env "PYTHONPATH=$STREETSCOPE_CACHE/onnxruntime-openvino")
      fi
      log "run $r: Python (OpenCV, onnxruntime, trackers, supervision), $(basename "$PM"), $PP; load $(cut -d' ' -f1-3 /proc/loadavg)"
      "${PYENV[@]}" "$PY" tools/python/pipeline_reference.py "$CLIP" --truth "$TRUTH" --model "$PM" --threads "$THREADS" \
        --sample-fps 25 --provider "$PP" | SIDE=$SIDE "$PY" -c '
import json, os, sys
for l in sys.stdin:
    r = json.loads(l)
    r["side"] = os.environ["SIDE"]
    print(json.dumps(r), flush=True)' | tee -a "$OUT/runs.jsonl" >&2
    done
  done
done

"$PY" - "$OUT/runs.jsonl" "$TRUTH" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
truth = json.load(open(sys.argv[2]))
expected = {}
for ln in truth["lines"]:
    for v in truth["vehicles"]:
        d = ln["forward"] if v["travel"] == "left_to_right" else ln["backward"]
        expected[f'{ln["name"]}/{d}'] = expected.get(f'{ln["name"]}/{d}', 0) + 1
def error(c):
    # Python's crossings are named forward/backward: map to the truth's labels.
    named = {}
    for k, n in c.items():
        line, d = k.split("/")
        ln = next(l for l in truth["lines"] if l["name"] == line)
        d = {"forward": ln["forward"], "backward": ln["backward"]}.get(d, d)
        named[f"{line}/{d}"] = named.get(f"{line}/{d}", 0) + n
    keys = set(named) | set(expected)
    return sum(abs(named.get(k, 0) - expected.get(k, 0)) for k in keys)
med = {}
sides = [s for s in ("streetscope", "streetscope-spin") if any(r["side"] == s for r in runs)]
pythons = list(dict.fromkeys(r["side"] for r in runs if r["side"].startswith("python")))
sides += pythons
for side in sides:
    rs = [r for r in runs if r["side"] == side]
    med[side] = statistics.median(r["fps"] for r in rs)
    errs = [error(r["crossings"]) for r in rs]
    each = ", ".join("%.2f" % r["fps"] for r in rs)
    print(f"{side:12} frames/s {each} (median {med[side]:.2f}); "
          f"frames {rs[0]['frames']}; crossings {rs[0]['total_crossings']} of {sum(expected.values())}, "
          f"count errors per run {errs}")
for pside in pythons:
    py = [r["fps"] for r in runs if r["side"] == pside]
    for side in sides[: len(sides) - len(pythons)]:
        pairs = [r["fps"] / p for r, p in zip([r for r in runs if r["side"] == side], py)]
        print(f"ratio {side} / {pside} (medians): {med[side] / med[pside]:.3f}; "
              f"per round: {', '.join('%.3f' % x for x in pairs)}")
PY
