#!/usr/bin/env bash
# Side-by-side benchmark: the same `ferrio bench` scenario against the official Node socket.io 4.8
# server, socketioxide and `ferrio serve`, each server pinned to core 0, the generator to core 1.
#
#   bash bench/run.sh SCENARIO      # idle | echo | fanout | rooms | polling | storm
#   bash bench/run.sh all
#   bash bench/run.sh echo rooms    # several
#
# Sizes can be overridden from the environment, e.g. IDLE_CLIENTS=5000 FANOUT_CLIENTS=2000 DURATION=6.
# SERVERS="node ferrio" runs a subset; ROUNDS=3 runs each scenario three times against every server and
# shows each server's median round (see below). FERRIO_SERVER=PATH serves with another build of ferrio
# (an A/B of two builds: the generator stays the current build). Results (one JSON per run, plus logs) go to bench/results/, with
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
  echo "usage: bash bench/run.sh SCENARIO... (idle echo fanout rooms polling storm, or all)" >&2
  exit 2
}
[ $# -ge 1 ] || usage
SCENARIOS=""
for arg in "$@"; do
  case "$arg" in
    all) SCENARIOS="$SCENARIOS idle echo fanout rooms polling storm" ;;
    idle | echo | fanout | rooms | polling | storm) SCENARIOS="$SCENARIOS $arg" ;;
    *) usage ;;
  esac
done

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
    ferrio) launch "$name" "$log" taskset -c $SERVER_CPUS "${FERRIO_SERVER:-$FERRIO}" serve --port 0 --log warn --serve-client false ;;
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

run_one() { # SCENARIO SERVER OUT (OUT.json, OUT.log, OUT.server.log)
  local scenario=$1 server=$2 out=$3
  start_server "$server" "$out.server.log"
  echo "== $scenario against $server ($URL, pid $SERVER_PID, server cores $SERVER_CPUS)" >&2
  sleep 0.5
  # shellcheck disable=SC2046
  if ! taskset -c $GENERATOR_CPUS "$FERRIO" bench "$scenario" "$URL" $(scenario_args "$scenario") \
    --server-pid "$SERVER_PID" --json >"$out.json" 2> >(tee "$out.log" >&2); then
    echo "{\"scenario\":\"$scenario\",\"failed\":true}" >"$out.json"
  fi
  stop_server
  sleep 1
}

# ROUNDS > 1: every scenario runs that many times against each server, and the table shows each
# server's median round (bench/median.mjs; every round's figure goes to rounds.txt). On a host whose
# speed drifts by tens of percent from one minute to the next, one round per server compares the
# moments more than the servers. Each round takes the servers in the other order, so that a drift over
# the rounds falls on all of them alike.
ROUNDS=${ROUNDS:-1}
: >"$RESULTS/rounds.txt"
for scenario in $SCENARIOS; do
  if [ "$ROUNDS" -le 1 ]; then
    for server in $SERVERS; do run_one "$scenario" "$server" "$RESULTS/$scenario-$server"; done
    continue
  fi
  for server in $SERVERS; do rm -f "$RESULTS/$scenario-$server".r*.json; done
  for round in $(seq "$ROUNDS"); do
    order=$SERVERS
    [ $((round % 2)) -eq 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
    for server in $order; do run_one "$scenario" "$server" "$RESULTS/$scenario-$server.r$round"; done
  done
  for server in $SERVERS; do
    node bench/median.mjs "$scenario" "$server" "$RESULTS/$scenario-$server".r*.json \
      >"$RESULTS/$scenario-$server.json" 2> >(tee -a "$RESULTS/rounds.txt" >&2)
  done
done

node bench/table.mjs "$RESULTS" $SCENARIOS | tee "$RESULTS/table.txt"
# The same runs as charts (throughput per rate step, latency distributions), one self-contained page.
node bench/report.mjs "$RESULTS" $SCENARIOS >"$RESULTS/report.html"
echo "report: $RESULTS/report.html" >&2
