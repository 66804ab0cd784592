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
    rm -rf "$out" "$out.log"
    # One run with the client's default offer, one for the cases whose server accepts only offers with
    # client_no_context_takeover (see the example); RESULTS.md merges the two.
    no_context=(-i '13.2.*' -i '13.5.*' -i '13.6.*')
    run_client() { # outdir, kosoku filters..., --, client flags...
        local dir=$1
        shift
        local filters=()
        while [ "$1" != -- ]; do filters+=("$1"); shift; done
        shift
        : >"$log"
        nice -n 10 kosoku -m fuzzingserver -o "$dir" "${filters[@]}" 127.0.0.1:0 >>"$out.log" 2>"$log" &
        pid=$!
        for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
        url=$(sed -n 's#.*listening on \(ws://[^ ]*\).*#\1#p' "$log")
        [ -n "$url" ] || { echo "kosoku did not start" >&2; cat "$log" >&2; exit 1; }
        nice -n 10 target/release/examples/ws_autobahn_client "$@" "$url" || status=$?
        wait "$pid" || status=$?
        pid=
        cat "$log" >>"$out.log"
    }
    excluded=()
    for f in '13.2.*' '13.5.*' '13.6.*'; do excluded+=(-x "$f"); done
    run_client "$out/default" "$@" "${excluded[@]}" --
    run_client "$out/no-context" "$@" "${no_context[@]}" -- --client-no-context-takeover
fi
tail -3 "$out.log"
if [ "$mode" = server ]; then
    python3 autobahn/summarize.py server autobahn/RESULTS.md "$out/index.json"
else
    python3 autobahn/summarize.py client autobahn/RESULTS.md "$out"/*/index.json
fi
head -60 autobahn/RESULTS.md
exit $status
