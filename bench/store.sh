#!/usr/bin/env bash
# Durable publishes/s through the embedded store with 1, 16 and 64 concurrent publishers,
# beside the in-memory `local` transport in the same run, and the replay speed of the
# store (events/s streamed to one subscriber reconnecting with Last-Event-ID: earliest).
#
#   bench/store.sh [UPDATES_PER_RUN] [REPLAY_EVENTS]
updates="${1:-20000}"
replay="${2:-200000}"
source "$(dirname "$0")/lib.sh"

start_hub lmdb "lmdb://$work/store.db"; lmdb_port=$port; lmdb_pid=$pid
start_hub local "local://"; local_port=$port
echo "| publishers | lmdb publishes/s | lmdb p99 latency | local publishes/s | local p99 latency | lmdb / local |"
echo "|---|---|---|---|---|---|"
for p in 1 16 64; do
    l=$(build/loadgen --port "$lmdb_port" --publishers "$p" --updates "$updates" --json)
    m=$(build/loadgen --port "$local_port" --publishers "$p" --updates "$updates" --json)
    lr=$(echo "$l" | field publishes_per_s); mr=$(echo "$m" | field publishes_per_s)
    echo "| $p | $lr | $(echo "$l" | field publish_p99_us) us | $mr | $(echo "$m" | field publish_p99_us) us | $(awk "BEGIN{printf \"%.2f\", $lr/$mr}") |"
done

# Replay: a fresh store filled with $replay updates, then one subscriber asks for all.
kill "$lmdb_pid"; wait "$lmdb_pid" 2>/dev/null || true
rm -f "$work/store.db"*
start_hub replay "lmdb://$work/replay.db"; replay_port=$port
r=$(build/loadgen --port "$replay_port" --publishers 64 --updates "$replay" --replay --json)
echo
echo "replay: $(echo "$r" | field replayed) events in $(echo "$r" | field replay_s) s = $(echo "$r" | field replay_events_per_s) events/s"
