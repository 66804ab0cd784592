#!/usr/bin/env bash
# Side-by-side benchmark: the same `ferrio bench` scenario against the official Node socket.io 4.8
# server, socketioxide and `ferrio serve`, each server pinned to core 0, the generator to core 1.
#
#   bash bench/run.sh SCENARIO      # idle | echo | fanout | rooms | polling | storm
#   bash bench/run.sh all
#
# Sizes can be overridden from the environment, e.g. IDLE_CLIENTS=5000 FANOUT_CLIENTS=2000 DURATION=6.
# SERVERS="node ferrio" runs a subset. Results (one JSON per run, plus logs) go to bench/results/, with
# the text table (table.txt) and an HTML report with charts (report.html).
#
# CPUS=2: the multi-core runs. Server and generator both get cores 0 and 1 (this box has two), and the
# results go to bench/results-2cpu/. The table's figures are per CPU-second of the server, so a server
# that uses its second core well keeps them; one that spends it on contention loses.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS="$ROOT/bench/results"
case "${CPUS:-1}" in
  1) SERVER_CPUS=0 GENERATOR_CPUS=1 ;;
  2) SERVER_CPUS=0,1 GENERATOR_CPUS=0,1 RESULTS="$ROOT/bench/results-2cpu" ;;
  *) echo "CPUS is 1 or 2" >&2; exit 2 ;;
esac
SERVERS=${SERVERS:-"node socketioxide ferrio"}
DURATION=${DURATION:-10}

usage() {
  echo "usage: bash bench/run.sh idle|echo|fanout|rooms|polling|storm|all" >&2
  exit 2
}
[ $# -eq 1 ] || usage
case "$1" in
  all) SCENARIOS="idle echo fanout rooms polling storm" ;;
  idle | echo | fanout | rooms | polling | storm) SCENARIOS=$1 ;;
  *) usage ;;
esac

# Thousands of sockets on each side of loopback.
ulimit -n 200000 2>/dev/null || ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
sysctl -qw net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null || true
echo "open files limit: $(ulimit -n)" >&2

command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
command -v node >/dev/null || { echo "node (>= 20) is required" >&2; exit 1; }

# ---- build what is missing or stale --------------------------------------------------------------
echo "== building ferrio (release)" >&2
cargo build --release -q -p ferrio-cli
FERRIO="$ROOT/target/release/ferrio"
if [[ " $SERVERS " == *" socketioxide "* ]]; then
  echo "== building the socketioxide server (release)" >&2
  (cd bench/socketioxide && cargo build --release -q)
fi
if [[ " $SERVERS " == *" node "* ]] && [ ! -d bench/node/node_modules/socket.io ]; then
  echo "== installing the Node server (npm ci)" >&2
  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p "$RESULTS"

# ---- one server, one scenario ---------------------------------------------------------------------
source bench/lib.sh

start_server() { # NAME LOG
  local name=$1 log=$2
  case "$name" in
    node) launch "$name" "$log" taskset -c $SERVER_CPUS node bench/node/server.mjs 0 ;;
    socketioxide) launch "$name" "$log" taskset -c $SERVER_CPUS bench/socketioxide/target/release/bench-socketioxide 0 ;;
    ferrio) launch "$name" "$log" taskset -c $SERVER_CPUS "$FERRIO" serve --port 0 --log warn --serve-client false ;;
  esac
}

scenario_args() {
  case "$1" in
    idle) echo "--clients ${IDLE_CLIENTS:-15000} --duration $DURATION --ramp ${RAMP:-1000}" ;;
    echo) echo "--clients ${ECHO_CLIENTS:-100} --duration $DURATION" ;;
    fanout) echo "--clients ${FANOUT_CLIENTS:-5000} --duration ${FANOUT_DURATION:-20} --rate 10,20,40,80 --ramp ${RAMP:-1000} --drain 5" ;;
    rooms) echo "--clients ${ROOMS_CLIENTS:-1000} --duration $DURATION --rate 2,5 --room-size 10" ;;
    polling) echo "--clients ${POLLING_CLIENTS:-1000} --duration $DURATION --rate 1" ;;
    storm) echo "--clients ${STORM_CLIENTS:-10000} --concurrency ${STORM_CONCURRENCY:-100}" ;;
  esac
}

for scenario in $SCENARIOS; do
  for server in $SERVERS; do
    log="$RESULTS/$scenario-$server.server.log"
    start_server "$server" "$log"
    echo "== $scenario against $server ($URL, pid $SERVER_PID, server cores $SERVER_CPUS)" >&2
    sleep 0.5
    # shellcheck disable=SC2046
    if ! taskset -c $GENERATOR_CPUS "$FERRIO" bench "$scenario" "$URL" $(scenario_args "$scenario") \
      --server-pid "$SERVER_PID" --json >"$RESULTS/$scenario-$server.json" 2> >(tee "$RESULTS/$scenario-$server.log" >&2); then
      echo "{\"scenario\":\"$scenario\",\"failed\":true}" >"$RESULTS/$scenario-$server.json"
    fi
    stop_server
    sleep 1
  done
done

node bench/table.mjs "$RESULTS" $SCENARIOS | tee "$RESULTS/table.txt"
# The same runs as charts (throughput per rate step, latency distributions), one self-contained page.
node bench/report.mjs "$RESULTS" $SCENARIOS >"$RESULTS/report.html"
echo "report: $RESULTS/report.html" >&2
