#!/usr/bin/env bash
# The whole test suite: sets everything up (scripts/setup.sh), checks formatting,
# lints, the crate-boundary invariants and generated files, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-broker.sh
# Debian's prometheus, unpacked into the cache (the observability test scrapes a run with it).
bash scripts/install-prometheus.sh
export STREETSCOPE_CACHE=${STREETSCOPE_CACHE:-$HOME/.cache/streetscope}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STREETSCOPE_CACHE/target}
log() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --release --locked --all-targets --quiet -- -D warnings
log "crate invariants"
bash scripts/check-invariants.sh
log "generated schemas are current"
"$CARGO_TARGET_DIR/release/streetscope" schema --check

log "deployment: the Helm chart and the CPU image (tests/deploy)"
bash scripts/test-deploy.sh

log "the dashboard in a browser (tests/dashboard)"
bash scripts/test-dashboard.sh
log "report.html in a browser (tests/report)"
bash scripts/test-report-browser.sh

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --locked --workspace --no-fail-fast
else
  cargo test --release --locked --workspace --no-fail-fast
fi
