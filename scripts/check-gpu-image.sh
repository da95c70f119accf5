#!/usr/bin/env bash
# Builds the GPU detector image (docker/Dockerfile.gpu, on top of the CPU image
# from scripts/build-image.sh) and checks, without a GPU, that every shared
# library ONNX Runtime's CUDA and TensorRT providers need resolves inside the
# image (ldd with the image's LD_LIBRARY_PATH). Only the driver's libcuda.so.1
# may be missing: the NVIDIA container toolkit mounts it from the node.
# Downloads some GB of wheels (CUDA, cuDNN, TensorRT) the first time: not part
# of CI; its result is recorded in docs/operations.md.
#
#   scripts/check-gpu-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
IMAGES=$CACHE/images
BUILDAH=(buildah --root "$IMAGES/containers/storage" --runroot "$IMAGES/containers/run" --storage-driver vfs)
log() { printf '\033[1m[check-gpu-image]\033[0m %s\n' "$*" >&2; }

# The wheels ONNX Runtime 1.31's GPU build loads: its PyPI wheel is built for
# CUDA 13 (libcudart.so.13, libcublas.so.13), cuDNN 9 and TensorRT 10
# (libnvinfer.so.10), as readelf on its provider libraries shows.
WHEELS=(
  onnxruntime-gpu==1.31.1
  "nvidia-cuda-runtime>=13,<14" "nvidia-cublas>=13,<14" "nvidia-curand>=10.4,<11"
  "nvidia-cudnn-cu13>=9,<10" "nvidia-nvjitlink>=13,<14" "nvidia-cuda-nvrtc>=13,<14"
)
# TensorRT 10 for CUDA 13 is on PyPI only as `tensorrt-cu13-libs` source
# packages (wheel-stub: no wheel in any of its 13 releases, nor in the 32 of
# tensorrt-cu12-libs) whose build fetches the real wheel from NVIDIA's own
# index (pypi.nvidia.com); docs/operations.md lists every package checked.
# Where that index is reachable, set
# STREETSCOPE_TENSORRT_INDEX=https://pypi.nvidia.com to add it.
PIP_EXTRA=()
if [ -n "${STREETSCOPE_TENSORRT_INDEX:-}" ]; then
  WHEELS+=("tensorrt-cu13-libs>=10.13,<11")
  PIP_EXTRA=(--extra-index-url "$STREETSCOPE_TENSORRT_INDEX")
fi
CPU=$(bash scripts/build-image.sh)
BASE=$("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -m1 '^localhost/streetscope-base:')
CTX=$IMAGES/gpu-context
mkdir -p "$CTX/wheels"
log "pip download (cached in $CTX/wheels)"
t0=$(date +%s)
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  "${PIP_EXTRA[@]}" --dest "$CTX/wheels" "${WHEELS[@]}"
log "wheels: $(du -sh "$CTX/wheels" | cut -f1) in $(( $(date +%s) - t0 )) s: $(cd "$CTX/wheels" && ls | tr '\n' ' ')"
log "buildah build docker/Dockerfile.gpu (FROM $CPU)"
t0=$(date +%s)
"${BUILDAH[@]}" build --quiet --layers --isolation chroot --pull=never --format docker \
  --build-arg "CPU_IMAGE=$CPU" --build-arg "BASE=$BASE" \
  -f docker/Dockerfile.gpu -t localhost/streetscope-gpu:test "$CTX" >&2
log "GPU image built in $(( $(date +%s) - t0 )) s"

ctr=$("${BUILDAH[@]}" from --pull=never localhost/streetscope-gpu:test)
trap '"${BUILDAH[@]}" rm "$ctr" >/dev/null' EXIT
report=$("${BUILDAH[@]}" run --isolation chroot -- "$ctr" /bin/sh -c '
  cd /opt/streetscope/lib/gpu
  echo "size: $(du -sh . | cut -f1)"
  for lib in libonnxruntime.so.1.31.1 libonnxruntime_providers_shared.so \
             libonnxruntime_providers_cuda.so libonnxruntime_providers_tensorrt.so; do
    [ -f "$lib" ] || { echo "MISSING $lib"; continue; }
    missing=$(ldd "$lib" | grep "not found" | grep -v "libcuda.so.1" || true)
    if [ -n "$missing" ]; then echo "UNRESOLVED $lib:"; echo "$missing"; else echo "ok $lib"; fi
  done
  ls | grep -E "^lib(nvinfer|cudnn|cublas|cudart)\.so\.[0-9]+$" | tr "\n" " "; echo')
echo "$report"
if grep -qE "^(MISSING|UNRESOLVED)" <<<"$report"; then exit 1; fi
log "every library of the CUDA and TensorRT providers resolves (libcuda.so.1 comes from the node's driver)"
