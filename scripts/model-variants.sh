#!/usr/bin/env bash
# Makes the CPU variants of the detector's model (tools/python/model_variants.py:
# det_fp16 = boxes and classes only, det_u8 = det_fp16 taking the decoded bytes,
# det_u8_batch = det_u8 with a dynamic batch (GPU detectors that batch), det_fp32, det_int8, det_int8_mixed, fp32), checks each
# against the original on the test clips and times them side by side. Nothing
# is committed: the variants live in
#   $STREETSCOPE_CACHE/models/variants/<key>/
# where <key> is a hash of the source model and of the script that makes them,
# so a new model or a changed script makes new ones and an unchanged pair is
# never made twice. Prints the folder on stdout.
#
#   scripts/model-variants.sh [MODEL]            # make (if needed) and print the folder
#   scripts/model-variants.sh --check [MODEL]    # and compare + time every variant
#   scripts/model-variants.sh --default [MODEL]  # det_fp16, det_u8 and det_u8_batch alone, installed;
#                                                # det_u8 is the detector's default model; prints its path
#   scripts/model-variants.sh --int8 [MODEL]     # det_int8_mixed alone (the CPU variant:
#                                                # backbone, neck and box branch INT8, class
#                                                # branch float; about 4 minutes once), installed
#                                                # as models/yolo11n_det_int8_mixed.onnx; prints its path
#
# --default is what scripts/setup.sh runs: it needs only the reference tools'
# Python (onnx), makes det_fp16, det_u8 and det_u8_batch into the keyed folder when
# that folder lacks them, and copies them to $STREETSCOPE_CACHE/models/yolo11n_<name>.onnx;
# yolo11n_det_u8.onnx is the path the detector loads by default
# (crates/cli/src/paths.rs); the original stays where
# set-up put it (models/yolo11n_seg_fp16.onnx), selectable with --model.
#
# To run a variant: `detector.model = "<folder>/det_fp16.onnx"` (or --model).
# `STREETSCOPE_CPU_INT8=1 scripts/setup.sh` runs --int8 too; the detector runs it with
# `detector.model = "~/.cache/streetscope/models/yolo11n_det_int8_mixed.onnx"`, --model
# or STREETSCOPE_MODEL (docs/benchmarks.md: its speed and agreement).
set -euo pipefail

cd "$(dirname "$0")/.."
MODE=make
case "${1:-}" in
  --check) MODE=check; shift ;;
  --default) MODE=default; shift ;;
  --int8) MODE=int8; shift ;;
esac
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
ORIGINAL=$STREETSCOPE_CACHE/models/yolo11n_seg_fp16.onnx
# $STREETSCOPE_MODEL names what the detector loads: with --default or --int8 it is not the source.
if [ "$MODE" = default ] || [ "$MODE" = int8 ]; then MODEL=${1:-$ORIGINAL}; else MODEL=${1:-${STREETSCOPE_MODEL:-$ORIGINAL}}; fi
[ -f "$MODEL" ] || { echo "no model at $MODEL: run scripts/setup.sh" >&2; exit 1; }

log() { printf '\033[1m[model-variants]\033[0m %s\n' "$*" >&2; }

KEY=$(cat "$MODEL" tools/python/model_variants.py tools/python/yolo_ref.py | sha256sum | cut -c1-16)
OUT=$STREETSCOPE_CACHE/models/variants/$KEY

if [ "$MODE" = default ]; then
  # det_fp16 (boxes and classes), det_u8 (det_fp16 taking the decoded bytes) and
  # det_u8_batch (det_u8 with a dynamic batch, for GPU pools that batch across
  # cameras), each installed as models/yolo11n_<name>.onnx.
  for v in det_fp16 det_u8 det_u8_batch; do
    if [ ! -f "$OUT/$v.onnx" ]; then
      log "making $v of $MODEL in $OUT"
      "$(scripts/python-env.sh)" tools/python/model_variants.py make --only "$v" --model "$MODEL" --out "$OUT" >&2
    fi
    DEST=$STREETSCOPE_CACHE/models/yolo11n_$v.onnx
    if ! cmp -s "$OUT/$v.onnx" "$DEST"; then
      log "installing $DEST ($v of $(basename "$MODEL"))"
      cp "$OUT/$v.onnx" "$DEST.part"
      mv "$DEST.part" "$DEST"
    fi
  done
  echo "$STREETSCOPE_CACHE/models/yolo11n_det_u8.onnx"
  exit 0
fi

# OpenCV reads the calibration frames: the bench environment has it.
PY=$(scripts/python-env.sh bench)
CLIPS=(test-videos/out/two_way.mp4 test-videos/out/one_bus.mp4)
for c in "${CLIPS[@]}"; do
  [ -f "$c" ] || { echo "$c is missing: run scripts/setup.sh (it makes the test clips)" >&2; exit 1; }
done
# The calibration frames are part of what determines the INT8 variants.
KEY=$(cat "$MODEL" tools/python/model_variants.py tools/python/yolo_ref.py "${CLIPS[@]}" | sha256sum | cut -c1-16)
OUT=$STREETSCOPE_CACHE/models/variants/$KEY

if [ "$MODE" = int8 ]; then
  if [ ! -f "$OUT/det_int8_mixed.onnx" ]; then
    log "making det_int8_mixed of $MODEL in $OUT (calibration: a few minutes)"
    mkdir -p "$OUT"
    "$PY" tools/python/model_variants.py make --only det_int8_mixed --model "$MODEL" --out "$OUT" --clips "${CLIPS[@]}" >&2
  fi
  INSTALLED=$STREETSCOPE_CACHE/models/yolo11n_det_int8_mixed.onnx
  if ! cmp -s "$OUT/det_int8_mixed.onnx" "$INSTALLED"; then
    log "installing $INSTALLED (det_int8_mixed of $(basename "$MODEL"))"
    cp "$OUT/det_int8_mixed.onnx" "$INSTALLED.part"
    mv "$INSTALLED.part" "$INSTALLED"
  fi
  echo "$INSTALLED"
  exit 0
fi

if [ ! -f "$OUT/done" ]; then
  log "making the variants of $MODEL in $OUT"
  mkdir -p "$OUT"
  "$PY" tools/python/model_variants.py make --model "$MODEL" --out "$OUT" --clips "${CLIPS[@]}" >&2
  echo "$MODEL" >"$OUT/done"
fi

if [ "$MODE" = check ]; then
  for v in fp32 det_fp16 det_u8 det_fp32 det_int8 det_int8_mixed; do
    log "agreement of $v with the original (test clips, every 5th frame)"
    "$PY" tools/python/model_variants.py compare --model "$MODEL" --variant "$OUT/$v.onnx" --clips "${CLIPS[@]}" >&2
  done
  log "counts of streetscope run with det_fp16, det_u8, det_int8 and det_int8_mixed (every clip at 2.5, 5 and 10 frames/s)"
  "$PY" tools/python/model_variants.py counts --binary "${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}/release/streetscope" \
    --model "$OUT/det_fp16.onnx" --model "$OUT/det_u8.onnx" --model "$OUT/det_int8.onnx" \
    --model "$OUT/det_int8_mixed.onnx" --clips "${CLIPS[@]}" >&2
  log "speed, bare session.run, interleaved (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$PY" tools/python/model_variants.py speed --model "$MODEL" --model "$OUT/fp32.onnx" --model "$OUT/det_fp16.onnx" \
    --model "$OUT/det_u8.onnx" --model "$OUT/det_fp32.onnx" --model "$OUT/det_int8.onnx" --model "$OUT/det_int8_mixed.onnx" \
    --threads "$(nproc)" --rounds 7 --runs 5 >&2
fi
echo "$OUT"
