#!/usr/bin/env bash
# Cross-node broadcast benchmark: two `ferrio serve --adapter redis://…` nodes against two Node
# socket.io 4.8 + @socket.io/redis-adapter 8.3 nodes (bench/node/cluster-server.mjs), on the same
# private Redis, one pair at a time. `ferrio bench fanout` puts N receivers in one room, half on each
# node, and a publisher on node 1 that emits `chat` to the room; every rate is a separate run on a fresh
# pair of nodes (its own lost count; a backlog does not spill into the next run).
#
#   bash bench/cluster.sh
#
# Environment: FERRIO (a ferrio binary to use instead of building target/release/ferrio), RECEIVERS (2000), RATES ("20 50 100 200" broadcasts/s), DURATION (8 s per rate), RAMP
# (1000 conn/s), DRAIN (5 s), STACKS ("node ferrio"). Both nodes are pinned to core 0 (taskset -c 0), the
# generator to core 1; Redis also runs on core 1 (it only relays one publish per broadcast to two
# subscribers). Results (JSON per run, logs, table) go to bench/results/cluster-*.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS="$ROOT/bench/results"
RECEIVERS=${RECEIVERS:-2000}
RATES=${RATES:-"20 50 100 200"}
DURATION=${DURATION:-8}
RAMP=${RAMP:-1000}
DRAIN=${DRAIN:-5}
STACKS=${STACKS:-"node ferrio"}

ulimit -n 200000 2>/dev/null || ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
sysctl -qw net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null || true

for tool in taskset node redis-server; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

if [ -n "${FERRIO:-}" ]; then
  echo "== using $FERRIO" >&2
else
  echo "== building ferrio (release)" >&2
  cargo build --release -q -p ferrio-cli
  FERRIO="$ROOT/target/release/ferrio"
fi
if [[ " $STACKS " == *" node "* ]] && [ ! -d bench/node/node_modules/@socket.io/redis-adapter ]; then
  echo "== installing the Node server (npm ci)" >&2
  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p "$RESULTS"
rm -f "$RESULTS"/cluster-*.json

# ---- processes ------------------------------------------------------------------------------------
PIDS=()
stop_all() { # SIGTERM, then SIGKILL after 5 s (a Node server deep in a backlog is slow to exit)
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}
REDIS_PID=""
cleanup() {
  stop_all
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

REDIS_PORT=$(free_port)
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  >"$RESULTS/cluster-redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
  sleep 0.1
done
echo "== private redis on $REDIS_URL (pid $REDIS_PID)" >&2

URL=""
start_node() { # STACK INDEX -> sets URL, appends to PIDS
  local stack=$1 i=$2 log="$RESULTS/cluster-$1-node$2.server.log"
  case "$stack" in
    node) taskset -c 0 node bench/node/cluster-server.mjs 0 "$REDIS_URL" >"$log" 2>&1 & ;;
    ferrio) taskset -c 0 "$FERRIO" serve --port 0 --log warn --serve-client false --adapter "$REDIS_URL" >"$log" 2>&1 & ;;
  esac
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    URL=$(sed -n 's/^listening on //p' "$log" 2>/dev/null | head -1)
    [ -n "$URL" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$stack node $i did not start:" >&2
  cat "$log" >&2
  exit 1
}

# Every (rate, stack) gets a fresh pair of nodes, so that a backlog left by a saturated run does not
# slow the next one; stacks alternate within a rate, so that outside load hits both alike.
for rate in $RATES; do
  for stack in $STACKS; do
    start_node "$stack" 1
    URL1=$URL
    start_node "$stack" 2
    URL2=$URL
    PID1=${PIDS[0]} PID2=${PIDS[1]}
    out="$RESULTS/cluster-$stack-$rate"
    echo "== $stack at $rate broadcasts/s to $RECEIVERS receivers: node 1 $URL1 (pid $PID1), node 2 $URL2 (pid $PID2); loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    sleep 0.5
    if ! taskset -c 1 "$FERRIO" bench fanout "$URL1" --urls "$URL2" --clients "$RECEIVERS" \
      --rate "$rate" --duration "$DURATION" --ramp "$RAMP" --drain "$DRAIN" \
      --server-pid "$PID1,$PID2" --json >"$out.json" 2> >(tee "$out.log" >&2); then
      echo "{\"failed\":true}" >"$out.json"
    fi
    stop_all
    sleep 1
  done
done

# ---- the table --------------------------------------------------------------------------------------
STACKS="$STACKS" RATES="$RATES" RECEIVERS="$RECEIVERS" DIR="$RESULTS" node --input-type=module <<'EOF' | tee "$RESULTS/cluster-table.txt"
import { readFileSync, existsSync } from "node:fs";
const dir = process.env.DIR;
const stacks = process.env.STACKS.split(/\s+/).filter(Boolean);
const rates = process.env.RATES.split(/\s+/).filter(Boolean);
const receivers = Number(process.env.RECEIVERS);
const load = (s, r) => {
  const f = `${dir}/cluster-${s}-${r}.json`;
  if (!existsSync(f)) return null;
  try { return JSON.parse(readFileSync(f, "utf8").trim().split("\n").at(-1)); } catch { return { failed: true }; }
};
const fig = (j) => {
  if (!j || j.failed) return null;
  const secs = j.seconds, sv = j.server ?? {}, by = sv.cpu_us_by_pid ?? [];
  const cpu = (c) => (c == null ? null : c / 1e4 / secs);
  return {
    deliv: j.deliveries_per_s, p50: j.latency_us.p50, p99: j.latency_us.p99, lost: j.lost, expected: j.expected,
    cpu1: cpu(by[0]), cpu2: cpu(by[1]), cpuSum: cpu(sv.cpu_us),
    perCpu: sv.cpu_us > 0 ? j.deliveries_per_s / (sv.cpu_us / 1e6 / secs) : null,
    conns: `${j.connections.up_at_end}/${j.connections.ok + j.connections.failed}`, gen: j.generator_cpu_percent,
  };
};
const num = (x, d = 0) => (x == null || Number.isNaN(x) ? "-" : x.toFixed(d));
const us = (x) => (x == null ? "-" : x >= 10000 ? `${(x / 1000).toFixed(0)}ms` : x >= 1000 ? `${(x / 1000).toFixed(1)}ms` : `${x}µs`);
const ratio = (a, b) => (a == null || b == null || !b ? "" : ` (${(a / b).toFixed(2)}x)`);
const head = ["bcast/s", "stack", "up/conns", "offered/s", "deliv/s", "p50", "p99", "lost", "CPU% n1", "CPU% n2", "CPU% sum", "deliv/CPU-s", "gen CPU%"];
const rows = [head];
for (const r of rates) {
  const n = fig(load("node", r)) ?? {};
  for (const s of stacks) {
    const raw = load(s, r);
    if (!raw) continue;
    const f = fig(raw);
    if (!f) { rows.push([r, s, "FAILED", ...head.slice(3).map(() => "")]); continue; }
    rows.push([
      r, s, f.conns, num(Number(r) * receivers), num(f.deliv) + ratio(f.deliv, n.deliv),
      us(f.p50) + ratio(f.p50, n.p50), us(f.p99) + ratio(f.p99, n.p99),
      `${f.lost}/${f.expected}`, num(f.cpu1), num(f.cpu2), num(f.cpuSum) + ratio(f.cpuSum, n.cpuSum),
      num(f.perCpu) + ratio(f.perCpu, n.perCpu), num(f.gen),
    ]);
  }
}
const w = head.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((c, j) => String(c).padEnd(w[j])).join("  "));
  if (i === 0) console.log(w.map((x) => "-".repeat(x)).join("  "));
}
console.log(`
${receivers} receivers in one room, half on each node; the publisher on node 1. Ratios are to Node (socket.io
4.8 + @socket.io/redis-adapter 8.3). offered/s: broadcasts/s x receivers. deliv/s, p50, p99: the measured
step (end-to-end latency, publisher send to receiver). lost: expected - delivered after the drain. CPU%:
utime+stime of each node during the step, % of one core (both nodes share core 0, so their sum is at most
100). deliv/CPU-s: deliveries per second of the two nodes' CPU. gen CPU%: the generator (near 100: it is
the limit).`);
EOF
