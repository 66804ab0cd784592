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

log=$(mktemp)
"$FERRIO" serve --port 0 --log warn >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^listening on //p' "$log" | head -1)
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { echo "ferrio serve did not start:" >&2; cat "$log" >&2; exit 1; }

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
