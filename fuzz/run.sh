#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one at a time, and prints one summary line per
# target: seconds, executions, crashes. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). The committed seeds in corpus/<target>/ are read, never written: what
# the fuzzer finds goes to work/<target>/ (ignored by git), crashes to artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-60}
TARGETS=${TARGETS:-"engine_packet engine_payload engine_v3 socket_packet value_json redis_wire client_handshake msgpack_packet redis_streams server_handshake client_session ws_frames"}

cargo +nightly fuzz build -O
printf '%-18s %8s %12s %8s\n' target seconds execs crashes
status=0
for t in $TARGETS; do
    mkdir -p "work/$t" "artifacts/$t"
    log="work/$t.log"
    # A target stops at its first crash (its input is in artifacts/<target>/); the others still run.
    if cargo +nightly fuzz run -O "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then :; else status=1; fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    printf '%-18s %8s %12s %8s\n' "$t" "$SECONDS_EACH" "${execs:-?}" "$crashes"
done
exit $status
