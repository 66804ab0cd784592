#!/usr/bin/env bash
# The project's test command (README "Test"): builds once, runs the Rust tests in parallel, then the
# interop tests that drive the official npm packages against ferrio. Works on a fresh machine: the npm
# dependencies are installed from interop/package-lock.json when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

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
