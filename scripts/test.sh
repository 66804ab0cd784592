#!/usr/bin/env bash
# The project's test command (README "Test"): does its own set-up (npm packages of the interop tests,
# redis-server when missing), builds once, runs the Rust tests in parallel, then the interop tests that
# drive the official npm packages against ferrio, then a short smoke of each benchmark scenario.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== set-up"
if [ ! -d interop/node_modules ] || [ interop/package-lock.json -nt interop/node_modules ]; then
  (cd interop && npm ci --no-audit --no-fund)
fi
if ! command -v redis-server >/dev/null 2>&1; then
  # Tests start their own redis-server on a free port; only the binary is needed.
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is required (apt-get install redis-server)" >&2
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
