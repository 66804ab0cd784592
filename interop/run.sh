#!/usr/bin/env bash
# The one entry point of the interop tests: ferrio's servers against the official JavaScript clients.
#
# It assumes the Rust examples are already built; from the repository root:
#     cargo build -p ferrio --examples
# (the tests run target/debug/examples/*; FERRIO_ENGINE_INTEROP_BIN overrides the Engine.IO server binary).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
fi

exec node --test --test-concurrency=2 *.test.js
