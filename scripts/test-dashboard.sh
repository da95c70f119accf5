#!/usr/bin/env bash
# The dashboard in a real browser on a run of the demo clip (tests/dashboard/).
# usage: scripts/test-dashboard.sh [SCREENSHOTS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
modules=$(bash scripts/install-browser-test.sh | tail -n 1)
bin="${CARGO_TARGET_DIR:-$HOME/.cache/streetscope/target}/release/streetscope"
SCREENSHOTS_DIR="${1:-}" NODE_PATH="$modules" timeout 300 node tests/dashboard/browser.test.mjs "$bin" pipelines/demo.toml
