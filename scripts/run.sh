#!/usr/bin/env bash
# The project's run command (README "Run"): builds the `ferrio` binary and serves the demo chat on
# http://127.0.0.1:3000 (Ctrl-C to stop). Extra arguments go to `ferrio serve` and override its defaults
# (e.g. --port 4000, --config ferrio.toml --profile production). The browser bundle is found or fetched by
# `ferrio serve` itself (README "Run").
# FERRIO_BIN=PATH runs that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FERRIO_BIN:-}" ]; then
  cargo build --release -p ferrio-cli
  FERRIO_BIN=target/release/ferrio
fi
# No flags of our own: the host and port above are `ferrio serve`'s defaults, so every source the user
# gives (flags, FERRIO_* variables, a --config file) overrides them, and no flag is given twice.
exec "$FERRIO_BIN" serve "$@"
