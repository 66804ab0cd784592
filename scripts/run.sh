#!/usr/bin/env bash
# The project's run command (README "Run"): installs the pinned socket.io-client bundle when missing,
# builds the `ferrio` binary and serves the demo chat on http://127.0.0.1:3000 (Ctrl-C to stop).
# Extra arguments go to `ferrio serve` (e.g. --port 4000, --config ferrio.toml --profile production).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d interop/node_modules/socket.io-client/dist ] || [ interop/package-lock.json -nt interop/node_modules ]; then
  (cd interop && npm ci --no-audit --no-fund)
fi
cargo build --release -p ferrio-cli
exec target/release/ferrio serve --host 127.0.0.1 --port 3000 \
  --client-dist interop/node_modules/socket.io-client/dist "$@"
