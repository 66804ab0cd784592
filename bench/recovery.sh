#!/usr/bin/env bash
# The cost of connection state recovery: the same fan-out (`ferrio bench fanout`: receivers in one room,
# one publisher at a fixed broadcast rate) against `ferrio serve` with recovery off and on, and against
# the official Node socket.io 4.8 server (bench/recovery.mjs) off and on. Each server is pinned to core 0,
# the generator to core 1.
#
#   bash bench/recovery.sh
#
# Reported per run: server CPU per broadcast and per delivery, and the memory the stored packets take:
# with recovery on, every broadcast is kept (offset + packet) for max_disconnection_duration (2 min, more
# than a run lasts), so (RSS growth with recovery on - RSS growth with it off) / broadcasts is the memory
# per stored packet. ferrio keeps at most 10 000 packets (max_stored_packets): RATE * DURATION stays
# below that by default.
#
# Sizes from the environment: RECEIVERS (200), RATE broadcasts/s (400), DURATION s (20), RUNS
# ("ferrio-off ferrio-on node-off node-on"). FERRIO=path uses that binary instead of a release build
# (SMOKE=1: the debug build and a 2-second run, to check that the script works; not for figures).
# Results (one JSON per run, logs, the table) go to bench/results/recovery-*.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS="$ROOT/bench/results"
if [ "${SMOKE:-0}" = 1 ]; then
  RECEIVERS=${RECEIVERS:-20} RATE=${RATE:-100} DURATION=${DURATION:-2}
  if [ -z "${FERRIO:-}" ]; then
    [ -x target/debug/ferrio ] || cargo build -q -p ferrio-cli
    FERRIO="$ROOT/target/debug/ferrio"
  fi
fi
RECEIVERS=${RECEIVERS:-200}
RATE=${RATE:-400}
DURATION=${DURATION:-20}
RUNS=${RUNS:-"ferrio-off ferrio-on node-off node-on"}

command -v node >/dev/null || { echo "node (>= 20) is required" >&2; exit 1; }
# Pinning when taskset is there (the figures assume it); the smoke runs without.
PIN0="" PIN1=""
if command -v taskset >/dev/null; then PIN0="taskset -c 0" PIN1="taskset -c 1"; fi

if [ -z "${FERRIO:-}" ]; then
  echo "== building ferrio (release)" >&2
  cargo build --release -q -p ferrio-cli
  FERRIO="$ROOT/target/release/ferrio"
fi
if [[ " $RUNS " == *" node-"* ]] && [ ! -d bench/node/node_modules/socket.io ]; then
  echo "== installing the Node server (npm ci)" >&2
  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p "$RESULTS"

source bench/lib.sh

start_server() { # RUN LOG
  local run=$1 log=$2
  case "$run" in
    ferrio-off) launch "$run" "$log" $PIN0 "$FERRIO" serve --port 0 --log warn --serve-client false ;;
    ferrio-on) launch "$run" "$log" $PIN0 "$FERRIO" serve --port 0 --log warn --serve-client false --connection-state-recovery ;;
    node-off) launch "$run" "$log" $PIN0 node bench/recovery.mjs 0 off ;;
    node-on) launch "$run" "$log" $PIN0 node bench/recovery.mjs 0 on ;;
    *) echo "unknown run $run (ferrio-off ferrio-on node-off node-on)" >&2; exit 2 ;;
  esac
}

for run in $RUNS; do
  log="$RESULTS/recovery-$run.server.log"
  start_server "$run" "$log"
  echo "== fanout against $run ($URL, pid $SERVER_PID): $RECEIVERS receivers, $RATE broadcasts/s, ${DURATION}s" >&2
  sleep 0.5
  if ! $PIN1 "$FERRIO" bench fanout "$URL" --clients "$RECEIVERS" --rate "$RATE" --duration "$DURATION" \
    --drain 2 --server-pid "$SERVER_PID" --json >"$RESULTS/recovery-$run.json" \
    2> >(tee "$RESULTS/recovery-$run.log" >&2); then
    echo '{"failed":true}' >"$RESULTS/recovery-$run.json"
  fi
  stop_server
  sleep 1
done

node - "$RESULTS" $RUNS <<'JS' | tee "$RESULTS/recovery-table.txt"
const { readFileSync, existsSync } = require("node:fs");
const [dir, ...runs] = process.argv.slice(2);
const load = (run) => {
  const f = `${dir}/recovery-${run}.json`;
  if (!existsSync(f)) return null;
  try {
    const r = JSON.parse(readFileSync(f, "utf8").trim().split("\n").at(-1));
    return r.failed || !r.server ? null : r;
  } catch {
    return null;
  }
};
const num = (x, d = 1) => (x == null || !Number.isFinite(x) ? "-" : x.toFixed(d));
const growthKb = (r) => r.server.rss_kb - r.server.rss_base_kb;
const head = ["run", "broadcasts", "deliveries", "lost", "CPU-µs/broadcast", "CPU-µs/delivery", "RSS growth MB", "bytes/stored packet"];
const rows = [head];
for (const run of runs) {
  const r = load(run);
  if (!r) {
    rows.push([run, "FAILED", "", "", "", "", "", ""]);
    continue;
  }
  const [stack, mode] = run.split("-");
  const off = mode === "on" ? load(`${stack}-off`) : null;
  // The packets kept by recovery: the growth over the same run with recovery off, per broadcast.
  const perPacket = off ? ((growthKb(r) - growthKb(off)) * 1024) / r.sent : null;
  rows.push([
    run,
    String(r.sent),
    String(r.deliveries),
    String(r.lost),
    num(r.server.cpu_us / r.sent),
    num(r.server.cpu_us_per_message, 2),
    num(growthKb(r) / 1024),
    mode === "on" ? num(perPacket, 0) : "",
  ]);
}
const widths = head.map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)));
for (const [i, row] of rows.entries()) {
  console.log(row.map((c, j) => String(c).padEnd(widths[j])).join("  "));
  if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
}
console.log(`
CPU: server utime+stime over the measurement, per broadcast sent and per delivery received. RSS growth:
VmRSS at the end - VmRSS before the first connection. bytes/stored packet: (RSS growth on - RSS growth
off) / broadcasts (every broadcast is kept for recovery during the run).`);
JS
