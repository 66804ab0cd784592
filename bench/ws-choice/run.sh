#!/usr/bin/env bash
# Builds, benchmarks and probes both echo servers. ~1 minute total.
#   SECS=10 CONNS=100 IDLE=1000 ./run.sh
# Server pinned to CPU 0, load generator to CPU 1, so neither steals the
# other's core and server CPU time per message is attributable.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${SECS:-10} CONNS=${CONNS:-100} IDLE=${IDLE:-1000}
export CARGO_TARGET_DIR="$PWD/target"   # keep artefacts inside bench/ws-choice
cargo build --release --quiet
B=target/release
HZ=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || true     # 1000 idle conns = 1000 fds on each side

SRV=""; trap '[ -n "$SRV" ] && kill $SRV 2>/dev/null || true' EXIT

# Configurations: label:binary[:extra args]. tungstenite is run twice: with
# its defaults and with an 8 KiB read buffer (= fastwebsockets' buffer size).
CONFIGS=("tungstenite:tungstenite" "tungst-8k:tungstenite:--rbuf 8192" "fastws:fastws")

start() {  # start <config> <port> [--map-errors]; sets SRV to its pid
  IFS=: read -r _ bin extra <<<"$1"
  taskset -c 0 "$B/srv_$bin" "$2" $extra "${@:3}" > "$B/srv.log" 2>&1 &
  SRV=$!
  for _ in $(seq 50); do grep -q listening "$B/srv.log" && return; sleep 0.1; done
  echo "server $1 did not start" >&2; exit 1
}
stop() { kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""; }
ticks() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }            # utime+stime
kb() { awk -v k="$1" '$1 == k {print $2}' "/proc/$SRV/status"; }   # VmRSS: etc.
val() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

ROWS=()
port=9200
for cfg in "${CONFIGS[@]}"; do
  lib=${cfg%%:*}
  port=$((port + 1)); start "$cfg" "$port"
  taskset -c 1 "$B/loadgen" "$port" text "$CONNS" 1 > /dev/null   # warm-up (page faults, allocator)
  for kind in text binary; do
    t0=$(ticks)
    out=$(taskset -c 1 "$B/loadgen" "$port" "$kind" "$CONNS" "$SECS")
    t1=$(ticks)
    msgs=$(val "$out" msgs)
    cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v m="$msgs" 'BEGIN{printf "%.1f", d * 1e6 / hz / m}')
    ROWS+=("$lib $kind $(val "$out" rate) $cpu_us $(val "$out" p50_us) $(val "$out" p99_us)")
  done
  stop

  # Idle memory on a fresh server so load-test allocator leftovers don't count.
  port=$((port + 1)); start "$cfg" "$port"
  rss0=$(kb VmRSS:)
  taskset -c 1 "$B/loadgen" "$port" idle "$IDLE" 30 > "$B/idle.log" &
  gen=$!
  for _ in $(seq 100); do grep -q READY "$B/idle.log" && break; sleep 0.1; done
  sleep 2                                    # let the server settle after the last handshake
  rss1=$(kb VmRSS:)
  kill "$gen"; wait "$gen" 2>/dev/null || true
  stop
  ROWS+=("$lib idle $rss0 $rss1")
done

echo
echo "== echo benchmark: $CONNS conns, ${SECS}s each, closed loop, server on CPU0 / client on CPU1"
printf '%-12s %-7s %10s %14s %9s %9s\n' library payload msgs/s "srv CPU-us/msg" p50_us p99_us
for r in "${ROWS[@]}"; do
  set -- $r
  [ "$2" = idle ] || printf '%-12s %-7s %10s %14s %9s %9s\n' "$@"
done
echo
echo "== server RSS, fresh start vs $IDLE idle WebSocket connections"
printf '%-12s %10s %12s %14s\n' library "RSS 0 (kB)" "RSS $IDLE (kB)" "per conn (B)"
for r in "${ROWS[@]}"; do
  set -- $r
  [ "$2" = idle ] && printf '%-12s %10s %12s %14s\n' "$1" "$3" "$4" $(( ($4 - $3) * 1024 / IDLE ))
done

echo
echo "== robustness probe (each case on a fresh connection; 'yes' = RFC close code on the wire)"
for mode in "" --map-errors; do
  for cfg in "${CONFIGS[0]}" "${CONFIGS[2]}"; do   # buffer size doesn't change protocol handling
    lib=${cfg%%:*}
    port=$((port + 1)); start "$cfg" "$port" $mode
    echo "-- $lib ${mode:-(library only: echo loop just returns on Err)}"
    "$B/probe" "$port" "$SRV"
    stop
  done
done
