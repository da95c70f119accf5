#!/usr/bin/env bash
# The dashboard's browser test needs Debian's chromium and playwright-core (npm,
# pinned) — installed once, idempotently; playwright-core lives under
# ~/.cache/streetscope, outside the clone (its browsers are never downloaded:
# the test drives /usr/bin/chromium).
set -euo pipefail
PLAYWRIGHT_CORE_VERSION=1.57.0
dir="$HOME/.cache/streetscope/playwright-core-$PLAYWRIGHT_CORE_VERSION"
if ! command -v chromium >/dev/null 2>&1; then
  echo "[browser] installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi
if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
  echo "[browser] installing playwright-core@$PLAYWRIGHT_CORE_VERSION (npm) into $dir"
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_CORE_VERSION" >/dev/null)
fi
echo "$dir/node_modules"
