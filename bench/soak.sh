#!/usr/bin/env bash
# Soak: two `ferrio serve` nodes on one Redis (Redis Streams adapter, connection state recovery on),
# thousands of clients churning through them for MINUTES (`ferrio bench soak`: connect, join a room,
# chat, have the transport cut under them, reconnect and recover or join again, leave, come back as a
# new client), Redis restarted twice (at one third and two thirds of the run). Every REPORT seconds one
# line per node: RSS, open file descriptors (/proc/PID/fd), tasks alive on its tokio runtime (the
# `ferrio_runtime_alive_tasks` gauge of `/metrics`), sockets connected; at the end the generator's count
# of chat deliveries lost or duplicated for clients with recovery.
#
#   bash bench/soak.sh 30            # 30 minutes
#   CLIENTS=2000 REPORT=30 nice -n 10 bash bench/soak.sh 30
#
# Environment: FERRIO (a ferrio binary; default target/release/ferrio if built, else target/debug/ferrio,
# built if missing), CLIENTS (2000), REPORT (seconds between two lines, 30), CUT_EVERY (seconds between two
# transport cuts: each group of 25 clients is cut about every 160 s, so 2 with 2 000 clients), OUT (directory for logs, a temporary one by default). Redis runs with an append-only
# file in OUT, so a restart keeps the stream and the sessions, as a production Redis would.
set -euo pipefail

cd "$(dirname "$0")/.."
MINUTES=${1:-3}
CLIENTS=${CLIENTS:-2000}
REPORT=${REPORT:-30}
# One cut every 160 s per group of 25 clients: 2 s with 2 000 clients, 40 s with 100.
CUT_EVERY=${CUT_EVERY:-$(( (160 * 25 / CLIENTS) > 1 ? 160 * 25 / CLIENTS : 1 ))}
OUT=${OUT:-$(mktemp -d -t ferrio-soak.XXXXXX)}
mkdir -p "$OUT"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
command -v redis-server >/dev/null || { echo "redis-server is required" >&2; exit 1; }

if [ -z "${FERRIO:-}" ]; then
  if [ -x target/release/ferrio ]; then
    FERRIO=target/release/ferrio
  else
    [ -x target/debug/ferrio ] || cargo build -q -p ferrio-cli
    FERRIO=target/debug/ferrio
  fi
fi
echo "== soak: $MINUTES min, $CLIENTS clients, $FERRIO, logs in $OUT"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

PIDS=()
REDIS_PID=""
cleanup() {
  for p in "${PIDS[@]}" $REDIS_PID; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" $REDIS_PID; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap "exit 143" INT TERM

REDIS_PORT=$(free_port)
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$OUT" --appendonly yes \
    --appendfsync everysec --save "" >>"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server did not start" >&2
  exit 1
}
now_ms() { date +%s%3N; }
MARKS="$OUT/redis-marks"
: >"$MARKS"
restart_redis() {
  echo "down $(now_ms)" >>"$MARKS"
  echo "== $(date +%T) restarting Redis"
  redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
  wait "$REDIS_PID" 2>/dev/null || true
  start_redis
  echo "up $(now_ms)" >>"$MARKS"
}
start_redis

start_node() { # N -> sets NODE_PID, NODE_URL
  local n=$1 log="$OUT/node$1.log"
  "$FERRIO" serve --port 0 --log warn --adapter "redis-streams://127.0.0.1:$REDIS_PORT" \
    --connection-state-recovery --metrics >"$log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  NODE_URL=""
  for _ in $(seq 100); do
    # The log may not exist yet: the shell opens it in the child it just forked.
    NODE_URL=$(sed -n 's/^listening on //p' "$log" 2>/dev/null | head -1 || true)
    [ -n "$NODE_URL" ] && break
    sleep 0.1
  done
  [ -n "$NODE_URL" ] || { echo "node $n did not start:" >&2; cat "$log" >&2; exit 1; }
}
start_node 1
PID1=$NODE_PID URL1=$NODE_URL
start_node 2
PID2=$NODE_PID URL2=$NODE_URL

metric() { # URL NAME -> value (sum over label sets); "?" when the node does not answer in time
  local body
  body=$(curl -s --max-time 10 "$1/metrics") || { printf '?'; return 0; }
  awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d", s }' <<<"$body"
}
sample() { # ELAPSED
  local t=$1
  local line="t=${t}s"
  for i in 1 2; do
    local pid url rss fds tasks sockets
    pid=$([ "$i" = 1 ] && echo "$PID1" || echo "$PID2")
    url=$([ "$i" = 1 ] && echo "$URL1" || echo "$URL2")
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo "?")
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    tasks=$(metric "$url" ferrio_runtime_alive_tasks)
    sockets=$(metric "$url" ferrio_sockets)
    line+=" | node$i rss=${rss}kB fds=$fds tasks=$tasks sockets=$sockets"
  done
  echo "$line"
}

DURATION=$((MINUTES * 60))
echo "== $(date +%T) node1 $URL1 (pid $PID1), node2 $URL2 (pid $PID2), redis :$REDIS_PORT"
sample 0
"$FERRIO" bench soak "$URL1" --urls "$URL2" --clients "$CLIENTS" --duration "$DURATION" \
  --cut-every "$CUT_EVERY" --report-every "$REPORT" --redis-marks "$MARKS" \
  >"$OUT/summary.txt" 2>"$OUT/generator.log" &
GEN=$!
PIDS+=("$GEN")

START=$(date +%s)
RESTARTS=("$((DURATION / 3))" "$((2 * DURATION / 3))")
next_report=$REPORT
while kill -0 "$GEN" 2>/dev/null; do
  sleep 1
  elapsed=$(($(date +%s) - START))
  if [ "${#RESTARTS[@]}" -gt 0 ] && [ "$elapsed" -ge "${RESTARTS[0]}" ]; then
    restart_redis
    RESTARTS=("${RESTARTS[@]:1}")
  fi
  if [ "$elapsed" -ge "$next_report" ]; then
    sample "$elapsed"
    tail -1 "$OUT/generator.log" 2>/dev/null | sed 's/^/    /' || true
    next_report=$((next_report + REPORT))
  fi
done
wait "$GEN" && status=0 || status=$?
echo "== $(date +%T) generator done (exit $status); every client has left"
# A session whose client vanished without a close is dropped after ping_interval + ping_timeout (45 s).
for _ in 1 2 3 4; do
  sleep 15
  sample "$(($(date +%s) - START))"
done
echo "== summary"
cat "$OUT/summary.txt"
grep -E "ERROR|panicked" "$OUT"/node*.log | head -5 || true
exit "$status"
