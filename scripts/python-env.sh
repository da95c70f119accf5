#!/usr/bin/env bash
# Creates the Python environment of the detector's reference tools (tools/python):
# a venv in $STREETSCOPE_CACHE/venv with onnx (to generate small test models),
# numpy, pillow and the same ONNX Runtime as the Rust side. Idempotent and quick
# when done: a stamp file records the pinned set, and nothing is installed again
# while it holds every pin asked for. Prints the venv's python on stdout.
#
#   scripts/python-env.sh          # the detector's reference tools
#   scripts/python-env.sh bench    # and the Python trackers of the side-by-side
#                                  # benchmark (scripts/bench-trackers.sh)
set -euo pipefail

CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
VENV=$CACHE/venv
PY=$VENV/bin/python
STAMP=$VENV/.streetscope-pins

# Keep onnxruntime in step with ORT_VERSION in scripts/setup.sh (ort 2.0.0-rc.15 speaks 1.31).
PINS=(
  onnx==1.23.2
  numpy==2.4.6
  pillow==13.0.0
  onnxruntime==1.31.1
)
# What Python users count vehicles with today: Roboflow's `trackers` (ByteTrack)
# and supervision's LineZone. Pulls in scipy, opencv and matplotlib: only on request.
BENCH_PINS=(
  trackers==2.6.1
  supervision==0.31.2
)
case "${1:-}" in
  "") ;;
  bench) PINS+=("${BENCH_PINS[@]}") ;;
  *) echo "usage: $0 [bench]" >&2; exit 2 ;;
esac

log() { printf '\033[1m[python-env]\033[0m %s\n' "$*" >&2; }

have_all() {
  [ -x "$PY" ] && [ -f "$STAMP" ] || return 1
  local p
  for p in "${PINS[@]}"; do
    grep -qxF -- "$p" <(tr ' ' '\n' <"$STAMP") || return 1
  done
}
if have_all; then
  echo "$PY"
  exit 0
fi

if [ ! -x "$PY" ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "installing python3-venv"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  log "creating $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi

log "installing ${PINS[*]}"
mkdir -p "$CACHE/wheels"
# The ONNX Runtime wheel is usually in the cache already (scripts/setup.sh fetched it).
"$PY" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
  --find-links "$CACHE/wheels" "${PINS[@]}"
"$PY" -c 'import onnx, numpy, PIL, onnxruntime' >&2
case " ${PINS[*]} " in *" trackers=="*) "$PY" -c 'import trackers, supervision' >&2 ;; esac
echo "${PINS[*]}" >"$STAMP"
echo "$PY"
