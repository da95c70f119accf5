#!/usr/bin/env bash
# The demo: sets everything up (scripts/setup.sh), then runs the whole pipeline
# in one process on the bundled test clip (pipelines/demo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}
exec "$CARGO_TARGET_DIR/release/streetscope" run --config pipelines/demo.toml --output streetscope-results.jsonl "$@"
