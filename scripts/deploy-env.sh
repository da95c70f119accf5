#!/usr/bin/env bash
# The checkers of the deployment tests (tests/deploy): a Python venv with Helm's
# Go SDK (helm-python-sdk), kubernetes-validate, jsonschema, pytest and hadolint,
# in $STREETSCOPE_CACHE/deploy-venv-<hash of tools/deploy/requirements.txt>.
# Idempotent: a venv whose requirements hash matches is reused as it is (a
# changed pin makes a new one). Prints the venv's python on stdout.
#
#   scripts/deploy-env.sh            # the Python checkers
#   scripts/deploy-env.sh images     # and the image tools: mmdebstrap, buildah (apt)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
REQ=tools/deploy/requirements.txt
KEY=$(sha256sum "$REQ" | cut -c1-12)
VENV=$CACHE/deploy-venv-$KEY
PY=$VENV/bin/python
log() { printf '\033[1m[deploy-env]\033[0m %s\n' "$*" >&2; }

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

case "${1:-}" in
  "") ;;
  images) apt_install mmdebstrap buildah uidmap fuse-overlayfs binutils ;;
  *) echo "usage: $0 [images]" >&2; exit 2 ;;
esac

if [ ! -f "$VENV/.complete" ]; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_install python3-venv
  log "creating $VENV"
  rm -rf "$VENV"
  # Venvs of older requirements are not used again.
  for old in "$CACHE"/deploy-venv-*; do [ "$old" = "$VENV" ] || rm -rf "$old"; done
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check -r "$REQ"
  touch "$VENV/.complete"
fi
echo "$PY"
