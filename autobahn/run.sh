#!/usr/bin/env bash
# Runs the Autobahn|Testsuite server cases (through kosoku, `pip install kosoku`) against ferrio's
# websocket layer (crates/ferrio/examples/ws_echo.rs) and writes autobahn/RESULTS.md.
# Not part of CI: the whole suite takes minutes. Usage: autobahn/run.sh [kosoku -i/-x filters...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kosoku >/dev/null || { echo "kosoku not found: pip install kosoku" >&2; exit 1; }

nice -n 10 cargo build --release -p ferrio --example ws_echo
out=autobahn/reports
rm -rf "$out"
log=$(mktemp)
target/release/examples/ws_echo --port 0 >"$log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
addr=$(sed -n 's#listening on ws://##p' "$log")
[ -n "$addr" ] || { echo "ws_echo did not start" >&2; exit 1; }

status=0
nice -n 10 kosoku -m fuzzingclient -o "$out" "$@" "$addr" >"$out.log" 2>&1 || status=$?
tail -3 "$out.log"
python3 autobahn/summarize.py "$out/index.json" >autobahn/RESULTS.md
cat autobahn/RESULTS.md | head -40
exit $status
