#!/usr/bin/env bash
# report.html in a real browser (tests/report/): a simulated study's report is
# written by crates/report/examples/simulated_study.rs, then checked in
# Debian's headless chromium against its own CSVs, offline, and printed.
# usage: scripts/test-report-browser.sh [SCREENSHOTS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
modules=$(bash scripts/install-browser-test.sh | tail -n 1)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streetscope/target}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run --quiet --release --locked -p streetscope-report --example simulated_study -- "$out" >/dev/null
SCREENSHOTS_DIR="${1:-}" NODE_PATH="$modules" timeout 120 node tests/report/browser.test.mjs "$out"
