#!/usr/bin/env bash
# Client side-by-side: ferrio-client, rust_socketio 0.6 and the official Node socket.io-client doing
# closed-loop `echo` acks over websocket against one `ferrio serve` (release). The server runs on core 0,
# each client in turn on core 1 (current-thread runtime for the Rust clients), so the client's CPU per
# ack is its own. Then IDLE more sockets of each are held for the RSS an idle client costs.
#
#   bash bench/client.sh            # CLIENTS=50 DURATION=10 IDLE=1000 (seconds measured: DURATION)
# Results (one JSON per client, and the table) go to bench/results/client-*.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-50} DURATION=${DURATION:-10} IDLE=${IDLE:-1000}
RESULTS=bench/results
mkdir -p "$RESULTS"
ulimit -n 65536 2>/dev/null || true

cargo build --release -q -p ferrio-cli
(cd bench/client && cargo build --release -q)
[ -d interop/node_modules/socket.io-client ] || (cd interop && npm ci --no-audit --no-fund --loglevel=error)

log=$(mktemp)
taskset -c 0 target/release/ferrio serve --port 0 --log warn --serve-client false >"$log" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true; rm -f "$log"' EXIT
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^listening on //p' "$log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "ferrio serve did not start" >&2; cat "$log" >&2; exit 1; }

for lib in ferrio rust_socketio node; do
  echo "== client $lib against $url" >&2
  if [ "$lib" = node ]; then
    taskset -c 1 node --expose-gc bench/client/node.mjs "$url" "$CLIENTS" "$DURATION" "$IDLE"
  else
    taskset -c 1 bench/client/target/release/bench-client "$lib" "$url" "$CLIENTS" "$DURATION" "$IDLE"
  fi >"$RESULTS/client-$lib.json"
  sleep 1
done

node -e '
const fs = require("fs");
const rows = ["ferrio", "rust_socketio", "node"].map((l) => JSON.parse(fs.readFileSync(`bench/results/client-${l}.json`, "utf8")));
const rs = rows[1];
const f = (x, d = 1) => (x == null ? "-" : Number(x).toFixed(d));
console.log("client             acks/s   CPU-µs/ack (vs rust_socketio)   p50 µs   p99 µs  errors  RSS/idle client");
for (const r of rows) {
  console.log(`${r.lib.padEnd(16)} ${f(r.acks_per_s, 0).padStart(8)}   ${f(r.cpu_us_per_ack, 2).padStart(10)} (${f(r.cpu_us_per_ack / rs.cpu_us_per_ack, 2)}x)            ${String(r.latency_us.p50).padStart(7)}  ${String(r.latency_us.p99).padStart(7)}  ${String(r.errors).padStart(6)}  ${f(r.rss_per_idle_client_bytes, 0)} B`);
}' | tee "$RESULTS/client-table.txt"
