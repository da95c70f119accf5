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

CPU=$(bash scripts/build-image.sh)
BASE=$("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -m1 '^localhost/streetscope-base:')
log "buildah build docker/Dockerfile.gpu (FROM $CPU)"
t0=$(date +%s)
"${BUILDAH[@]}" build --quiet --layers --isolation chroot --pull=never \
  --build-arg "CPU_IMAGE=$CPU" --build-arg "BASE=$BASE" \
  -f docker/Dockerfile.gpu -t localhost/streetscope-gpu:test docker/ >&2
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
