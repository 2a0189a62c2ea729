#!/usr/bin/env bash
# Durable publishes/s through the embedded store with 1, 16 and 64 concurrent publishers,
# beside the in-memory `local` transport in the same run, and the replay speed of the
# store (events/s streamed to one subscriber reconnecting with Last-Event-ID: earliest).
#
#   bench/store.sh [UPDATES_PER_RUN] [REPLAY_EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
updates="${1:-20000}"
replay="${2:-200000}"
scripts/build build >/dev/null
key='!ChangeThisMercureHubJWTSecretKey!'
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_hub() { # name transport_url; sets $port and appends to $pids
    local name=$1 url=$2 dir="$work/$1"
    mkdir -p "$dir"
    (cd "$dir" && XDG_DATA_HOME="$dir/data" SERVER_NAME=127.0.0.1:0 MERCURE_PUBLISHER_JWT_KEY="$key" \
        MERCURE_SUBSCRIBER_JWT_KEY="$key" MERCURE_TRANSPORT_URL="$url" \
        exec "$OLDPWD/build/mercure" run >"$dir/out" 2>"$dir/log") &
    pids+=($!)
    for _ in $(seq 100); do
        port=$(grep -o 'listening on [^ ]*:[0-9]*' "$dir/log" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && return
        sleep 0.05
    done
    echo "hub $name did not start" >&2; exit 1
}

field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }

start_hub lmdb "lmdb://$work/store.db"; lmdb_port=$port
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
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
rm -f "$work/store.db"*
start_hub replay "lmdb://$work/replay.db"; replay_port=$port
r=$(build/loadgen --port "$replay_port" --publishers 64 --updates "$replay" --replay --json)
echo
echo "replay: $(echo "$r" | field replayed) events in $(echo "$r" | field replay_s) s = $(echo "$r" | field replay_events_per_s) events/s"
