#!/usr/bin/env bash
# Builds the Streetscope CPU image from docker/Dockerfile without a Docker
# engine: Debian's mmdebstrap makes the bookworm base (what debian:bookworm-slim
# is) from the apt mirror, buildah imports it and builds the Dockerfile
# daemonless (vfs storage, chroot isolation). Prints the image name on stdout.
#
#   scripts/build-image.sh            # build (or reuse) the CPU image
#   scripts/build-image.sh broker     # the chart's demo broker image (tansu,
#                                     # docker/Dockerfile.broker)
#
# Caches, outside the clone, under $STREETSCOPE_CACHE/images:
#   bookworm-<hash>.tar   the base root filesystem, keyed by its suite, variant
#                         and package list (made once: ~2.5 min);
#   containers/           buildah's storage: the imported base and the layers
#                         of every Dockerfile step (--layers), so an unchanged
#                         Dockerfile with an unchanged context rebuilds from cache.
# The binary comes from the host build ($CARGO_TARGET_DIR/release/streetscope):
# bookworm's rustc is too old to build the workspace inside the image.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
TARGET=${CARGO_TARGET_DIR:-$CACHE/target}
IMAGES=$CACHE/images
ORT_VERSION=1.31.1
# ONNX Runtime's OpenVINO build (scripts/setup.sh unpacks its wheel): what the
# CPU image's detectors load when their providers name openvino (the default;
# 1.17x the plain build's CPU provider on the vehicle model, same detections).
# Only the files the CPU device needs are packaged.
ORT_OPENVINO_VERSION=1.24.1
OV_LIBS=(libonnxruntime.so.$ORT_OPENVINO_VERSION libonnxruntime_providers_shared.so
  libonnxruntime_providers_openvino.so libopenvino.so.2541 libopenvino_onnx_frontend.so.2541
  libopenvino_intel_cpu_plugin.so libopenvino_auto_plugin.so libopenvino_hetero_plugin.so
  libtbb.so.12 libtbbmalloc.so)
TAG=${STREETSCOPE_IMAGE:-localhost/streetscope:test}
WHAT=${1:-cpu}
case $WHAT in cpu|broker) ;; *) echo "usage: $0 [cpu|broker]" >&2; exit 2 ;; esac
log() { printf '\033[1m[build-image]\033[0m %s\n' "$*" >&2; }

bash scripts/deploy-env.sh images >/dev/null
mkdir -p "$IMAGES"
BUILDAH=(buildah --root "$IMAGES/containers/storage" --runroot "$IMAGES/containers/run" --storage-driver vfs)

# 1. The base root filesystem, keyed by what determines it.
SUITE=bookworm
VARIANT=minbase
BASE_PKGS="apt ca-certificates"
MIRROR=${STREETSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEY=$(printf '%s\n' "$SUITE" "$VARIANT" "$BASE_PKGS" "$MIRROR" | sha256sum | cut -c1-12)
ROOTFS=$IMAGES/$SUITE-$KEY.tar
BASE=localhost/streetscope-base:$SUITE-$KEY
if [ ! -s "$ROOTFS" ]; then
  log "mmdebstrap $SUITE ($VARIANT + $BASE_PKGS) -> $ROOTFS"
  t0=$(date +%s)
  mmdebstrap --quiet --variant="$VARIANT" --include="${BASE_PKGS// /,}" \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$SUITE" "$ROOTFS.tmp" "$MIRROR"
  mv "$ROOTFS.tmp" "$ROOTFS"
  log "base root filesystem in $(( $(date +%s) - t0 )) s"
fi
if ! "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  log "importing $ROOTFS as $BASE"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$ROOTFS" / >/dev/null
  "${BUILDAH[@]}" config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$BASE" >/dev/null
fi

# 2b. The demo broker: tansu (scripts/install-broker.sh) on the same base.
if [ "$WHAT" = broker ]; then
  TANSU=$CACHE/tansu/bin/tansu
  [ -x "$TANSU" ] || { echo "missing $TANSU: run scripts/install-broker.sh first" >&2; exit 1; }
  CTX=$IMAGES/broker-context
  rm -rf "$CTX" && mkdir -p "$CTX"
  strip --strip-unneeded -o "$CTX/tansu" "$TANSU"
  TAG=${STREETSCOPE_BROKER_IMAGE:-localhost/streetscope-broker:test}
  KEY=$( (sha256sum docker/Dockerfile.broker; echo "$BASE"; sha256sum "$CTX/tansu") | sha256sum | cut -c1-16)
  if ! "${BUILDAH[@]}" inspect --type image "localhost/streetscope-broker:ctx-$KEY" >/dev/null 2>&1; then
    log "buildah build docker/Dockerfile.broker -> $TAG"
    t0=$(date +%s)
    "${BUILDAH[@]}" build --quiet --layers --isolation chroot --pull=never --format docker \
      --build-arg "BASE=$BASE" -f docker/Dockerfile.broker -t "localhost/streetscope-broker:ctx-$KEY" "$CTX" >&2
    log "broker image built in $(( $(date +%s) - t0 )) s"
    for old in $("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/streetscope-broker:ctx-' | grep -v ":ctx-$KEY\$"); do
      "${BUILDAH[@]}" rmi "$old" >/dev/null 2>&1 || true
    done
  fi
  "${BUILDAH[@]}" tag "localhost/streetscope-broker:ctx-$KEY" "$TAG"
  echo "$TAG"
  exit 0
fi

# 2. The build context: what the Dockerfile packages.
BIN=$TARGET/release/streetscope
ORT=$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION
OV_DIR=$CACHE/onnxruntime-openvino/onnxruntime/capi
# The binary's default model (det_u8: the vehicle model cut to boxes and
# classes, taking the decoded image's bytes; same detections, faster on CPU;
# docs/benchmarks.md), made from
# the set-up model by scripts/model-variants.sh --default (idempotent: returns at
# once when it is there and current).
MODEL=$CACHE/models/yolo11n_det_u8.onnx
# det_u8 with a dynamic batch, for GPU pools that batch across cameras
# (detector.max_batch above 1; docs/operations.md "Batches on a GPU").
BATCH_MODEL=$CACHE/models/yolo11n_det_u8_batch.onnx
[ -f "$CACHE/models/yolo11n_seg_fp16.onnx" ] && scripts/model-variants.sh --default >&2
ASSET=$CACHE/assets/bus.jpg
for f in "$BIN" "$ORT" "${OV_LIBS[@]/#/$OV_DIR/}" "$MODEL" "$BATCH_MODEL" "$ASSET"; do
  [ -f "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
done
CTX=$IMAGES/context
rm -rf "$CTX" && mkdir -p "$CTX/bin" "$CTX/lib/openvino" "$CTX/models" "$CTX/assets"
# Hard links where possible: the context is read, never written.
# Stripped here (the build host has binutils; the image does not need them):
# 127 MB with symbols, about a third of that without.
strip --strip-unneeded -o "$CTX/bin/streetscope" "$BIN"
ln -f "$ORT" "$CTX/lib/libonnxruntime.so.$ORT_VERSION" 2>/dev/null || cp "$ORT" "$CTX/lib/libonnxruntime.so.$ORT_VERSION"
for f in "${OV_LIBS[@]}"; do
  ln -f "$OV_DIR/$f" "$CTX/lib/openvino/$f" 2>/dev/null || cp "$OV_DIR/$f" "$CTX/lib/openvino/$f"
done
cp "$MODEL" "$BATCH_MODEL" "$CTX/models/"
cp "$ASSET" "$CTX/assets/"

# 3. The image, from the real Dockerfile, unless one was built from exactly
# this Dockerfile, context and base (then it is only tagged).
KEY=$( (sha256sum docker/Dockerfile; echo "$BASE"; cd "$CTX" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
if "${BUILDAH[@]}" inspect --type image "localhost/streetscope:ctx-$KEY" >/dev/null 2>&1; then
  "${BUILDAH[@]}" tag "localhost/streetscope:ctx-$KEY" "$TAG"
  log "image unchanged (ctx-$KEY)"
  echo "$TAG"
  exit 0
fi
log "buildah build docker/Dockerfile -> $TAG"
t0=$(date +%s)
"${BUILDAH[@]}" build --quiet --layers --isolation chroot --pull=never \
  --format docker --build-arg "BASE=$BASE" -f docker/Dockerfile -t "$TAG" -t "localhost/streetscope:ctx-$KEY" "$CTX" >&2
log "image built in $(( $(date +%s) - t0 )) s"
# vfs keeps a full copy of the root filesystem per layer: drop the images of
# earlier contexts and the layers no tagged image uses any more.
for old in $("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/streetscope:ctx-' | grep -v ":ctx-$KEY\$"); do
  "${BUILDAH[@]}" rmi "$old" >/dev/null 2>&1 || true
done
"${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
echo "$TAG"
