#!/usr/bin/env bash
# Detector benchmarks on a GPU machine: CUDA and TensorRT providers, TensorRT
# engine build time with an empty cache against a cached engine, and frames/s by
# batch size. Run it where an NVIDIA GPU, its driver, and the GPU build of ONNX
# Runtime 1.31 (PyPI `onnxruntime-gpu==1.31.1`, with CUDA 12 / cuDNN 9 and, for
# TensorRT, TensorRT 10 libraries on the loader path) are present:
#
#   ORT_DYLIB_PATH=/path/to/onnxruntime/capi/libonnxruntime.so.1.31.1 bash scripts/gpu-bench.sh [MODEL]
#
# MODEL defaults to the detector's default model (det_u8: uint8 input, its
# scaling done on the GPU); the CUDA and TensorRT runs are repeated with det_fp16
# (float input filled on the CPU) to say what the uint8 input is worth there.
# Batch sizes above 1 need a model with a dynamic batch: BATCH_MODEL, default
# det_u8_batch (det_u8 with a symbolic batch, made by set-up; for a model of your
# own, Ultralytics' `yolo export format=onnx dynamic=True`).
# Prints one table per measurement; copy them into docs/benchmarks.md with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
BIN=${STREETSCOPE_BIN:-${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}/release/streetscope}
MODEL=${1:-$STREETSCOPE_CACHE/models/yolo11n_det_u8.onnx}
FLOAT_MODEL=$STREETSCOPE_CACHE/models/yolo11n_det_fp16.onnx
BATCH_MODEL=${BATCH_MODEL:-$STREETSCOPE_CACHE/models/yolo11n_det_u8_batch.onnx}
[ -n "${ORT_DYLIB_PATH:-}" ] || { echo "set ORT_DYLIB_PATH to the GPU build of libonnxruntime" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release -p streetscope" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

ENGINES=$(mktemp -d)
trap 'rm -rf "$ENGINES"' EXIT
run() { echo "== $*"; "$BIN" --log-level info bench detect --model "$MODEL" --frames 200 --repeat 3 "$@"; }
run_batch() { echo "== det_u8_batch $*"; "$BIN" --log-level info bench detect --model "$BATCH_MODEL" --frames 400 --repeat 3 "$@"; }
run_float() { echo "== det_fp16 $*"; "$BIN" --log-level info bench detect --model "$FLOAT_MODEL" --frames 200 --repeat 3 "$@"; }

# CUDA.
run --providers cuda,cpu
# Two sessions at once on the GPU (detector.streams = 2; a GPU runs one by
# default): does a second run fill the GPU's gaps at batch 1?
run --providers cuda,cpu --streams 2
# TensorRT: the first start builds the engine (cold), the second loads it (cached).
run --providers tensorrt,cuda,cpu --engine-cache "$ENGINES"
run --providers tensorrt,cuda,cpu --engine-cache "$ENGINES"
# The float-input model beside it (its engine is built cold too).
if [ -f "$FLOAT_MODEL" ] && [ "$FLOAT_MODEL" != "$MODEL" ]; then
  run_float --providers cuda,cpu
  run_float --providers tensorrt,cuda,cpu --engine-cache "$ENGINES"
fi
# Batch sizes, on the dynamic-batch model: CUDA, then TensorRT (an engine per
# batch profile, built cold into the same cache).
for b in 1 2 4 8 16; do
  run_batch --providers cuda,cpu --batch "$b" --workers 4
done
for b in 1 8 16; do
  run_batch --providers tensorrt,cuda,cpu --engine-cache "$ENGINES" --batch "$b" --workers 4
done
