#!/usr/bin/env bash
# Runs the Autobahn|Testsuite cases (through kosoku, `pip install kosoku`) against ferrio's websocket
# layer and writes autobahn/RESULTS.md.
#   autobahn/run.sh [kosoku -i/-x filters...]          server cases against the server
#                                                       (crates/ferrio/examples/ws_echo.rs)
#   autobahn/run.sh client [kosoku -i/-x filters...]   client cases against ferrio-client's websocket
#                                                       (crates/ferrio-client/examples/ws_autobahn_client.rs)
# Each mode rewrites its own table in RESULTS.md and keeps the other's.
# Not part of CI: the whole suite takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kosoku >/dev/null || { echo "kosoku not found: pip install kosoku" >&2; exit 1; }

mode=server
if [ "${1:-}" = client ]; then
    mode=client
    shift
fi

log=$(mktemp)
pid=
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }; rm -f "$log"' EXIT
status=0
if [ "$mode" = server ]; then
    nice -n 10 cargo build --release -p ferrio --example ws_echo
    out=autobahn/reports
    rm -rf "$out"
    target/release/examples/ws_echo --port 0 >"$log" &
    pid=$!
    for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
    addr=$(sed -n 's#listening on ws://##p' "$log")
    [ -n "$addr" ] || { echo "ws_echo did not start" >&2; exit 1; }
    nice -n 10 kosoku -m fuzzingclient -o "$out" "$@" "$addr" >"$out.log" 2>&1 || status=$?
else
    nice -n 10 cargo build --release -p ferrio-client --example ws_autobahn_client
    out=autobahn/reports-client
    rm -rf "$out"
    nice -n 10 kosoku -m fuzzingserver -o "$out" "$@" 127.0.0.1:0 >"$out.log" 2>"$log" &
    pid=$!
    for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
    url=$(sed -n 's#.*listening on \(ws://[^ ]*\).*#\1#p' "$log")
    [ -n "$url" ] || { echo "kosoku did not start" >&2; cat "$log" >&2; exit 1; }
    nice -n 10 target/release/examples/ws_autobahn_client "$url" || status=$?
    wait "$pid" || status=$?
    pid=
    cat "$log" >>"$out.log"
fi
tail -3 "$out.log"
python3 autobahn/summarize.py "$mode" "$out/index.json" autobahn/RESULTS.md
head -60 autobahn/RESULTS.md
exit $status
