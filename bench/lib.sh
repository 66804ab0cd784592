# Sourced by the bench scripts: one server at a time, started in the background, stopped on exit.

SERVER_PID=""
URL=""

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap stop_server EXIT

# launch NAME LOG COMMAND...: runs COMMAND in the background (output to LOG) and waits for the
# "listening on http://ADDR" line every server prints (they bind any free port); sets SERVER_PID and URL.
launch() {
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    URL=$(sed -n 's/^listening on //p' "$log" 2>/dev/null | head -1)
    [ -n "$URL" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$log" >&2
  exit 1
}
