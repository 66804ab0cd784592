#!/usr/bin/env bash
# A ~10-second smoke of every `ferrio bench` scenario against `ferrio serve` (small sizes, ~1 s each).
# Fails on any error, failed or dropped connection, lost message or zero throughput (`--check`).
# Uses the release build if there is one, else the debug build (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x target/release/ferrio ]; then
  FERRIO=target/release/ferrio
else
  [ -x target/debug/ferrio ] || cargo build -q -p ferrio-cli
  FERRIO=target/debug/ferrio
fi

source bench/lib.sh
log=$(mktemp)
trap 'stop_server; rm -f "$log"' EXIT
launch "ferrio serve" "$log" "$FERRIO" serve --port 0 --log warn
url=$URL

run() { # SCENARIO ARGS...
  local scenario=$1
  shift
  echo "== smoke: $scenario $*"
  "$FERRIO" bench "$scenario" "$url" --duration 1 --drain 2 --ramp 2000 --quiet --check "$@"
}
run idle --clients 200
run echo --clients 20
run echo --clients 20 --rate 500
run echo --clients 10 --transport polling
run fanout --clients 100 --rate 10,40
run rooms --clients 50 --rate 5
run polling --clients 20 --rate 2
run storm --clients 200 --concurrency 20
run storm --clients 50 --concurrency 10 --transport polling
echo "smoke: every scenario passed"
