#!/usr/bin/env bash
# Heap per idle connection, by owner: the `idle_memory` example (a ferrio server with the demo's
# listeners) runs under valgrind's DHAT while `ferrio bench idle` holds CLIENTS idle connections from
# another process, so only the server's allocations count. The server exits with the connections still
# open, and DHAT's "at t-end" figures (bytes live at exit, per allocation stack) are grouped by owner
# by bench/memory-breakdown.py. Byte counts do not depend on the machine's load.
#
#   bash bench/memory.sh [websocket|polling|both]     # CLIENTS=1000 by default
#
# Without valgrind (NO_DHAT=1), only the example's own totals are printed (a counting allocator, and
# RSS, which does depend on the allocator and the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLIENTS=${CLIENTS:-1000}
OUT=${OUT:-$ROOT/bench/results/memory}
WHICH=${1:-both}
case "$WHICH" in
  websocket) TRANSPORTS=websocket ;;
  polling) TRANSPORTS=polling ;;
  both) TRANSPORTS="websocket polling" ;;
  *) echo "usage: bash bench/memory.sh [websocket|polling|both]" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

cargo build --release -q -p ferrio --example idle_memory
cargo build --release -q -p ferrio-cli
SERVER="$ROOT/target/release/examples/idle_memory"
FERRIO="$ROOT/target/release/ferrio"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

for t in $TRANSPORTS; do
  log="$OUT/$t.server.txt"
  if [ -n "${NO_DHAT:-}" ]; then
    "$SERVER" --clients "$CLIENTS" --settle 3 >"$log" 2>&1 &
  else
    valgrind --tool=dhat --num-callers=40 --dhat-out-file="$OUT/$t.dhat" \
      "$SERVER" --clients "$CLIENTS" --settle 5 >"$log" 2>"$OUT/$t.valgrind.txt" &
  fi
  server=$!
  PIDS=("$server")
  url=""
  for _ in $(seq 200); do
    url=$(sed -n 's/^listening on //p' "$log" | head -1)
    [ -n "$url" ] && break
    sleep 0.2
  done
  [ -n "$url" ] || { echo "the server did not start:" >&2; cat "$log" >&2; exit 1; }
  # Held long enough for any machine: the server exits once it has measured.
  "$FERRIO" bench idle "$url" --clients "$CLIENTS" --duration 600 --ramp 500 --transport "$t" -q \
    >"$OUT/$t.bench.txt" 2>&1 &
  PIDS+=("$!")
  wait "$server"
  kill "${PIDS[1]}" 2>/dev/null || true
  wait "${PIDS[1]}" 2>/dev/null || true
  PIDS=()
  echo "== $t: $(grep '^idle' "$log")"
  if [ -z "${NO_DHAT:-}" ]; then
    python3 bench/memory-breakdown.py "$OUT/$t.dhat" "$CLIENTS" | tee "$OUT/$t.breakdown.txt"
  fi
done
