#!/usr/bin/env bash
# The project's test command (README "Test"): does its own set-up (npm packages of the interop tests,
# redis-server and chromium when missing), builds once, runs the Rust tests in parallel, then the interop tests that
# drive the official npm packages against ferrio, then a short smoke of each benchmark scenario.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== set-up"
if [ ! -d interop/node_modules ] || [ interop/package-lock.json -nt interop/node_modules ]; then
  (cd interop && npm ci --no-audit --no-fund)
fi
# Debian packages the tests need: redis-server (tests start their own on a free port) and chromium
# (the demo page test). Installed when missing.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]} (apt-get install them)" >&2
    exit 1
  fi
fi

echo "== build (workspace, tests, examples)"
cargo build --workspace --all-targets --locked

echo "== rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
cargo test --workspace --doc --locked

echo "== interop tests (official npm packages)"
bash interop/run.sh

if [ -f bench/smoke.sh ]; then
  echo "== benchmark smoke"
  bash bench/smoke.sh
fi
