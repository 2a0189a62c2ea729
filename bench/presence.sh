#!/usr/bin/env bash
# Subscriber churn — subscribers connecting and leaving at RATE per second — with the
# `subscriptions` directive on (every arrival and departure is an event stored in the
# embedded store and an entry in the registry) versus off, in the same run.
#
#   bench/presence.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-1000}"
secs="${2:-10}"
scripts/build build >/dev/null
key='!ChangeThisMercureHubJWTSecretKey!'
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_hub() { # name extra-directives; sets $port and $pid
    local name=$1 extra=$2 dir="$work/$1"
    mkdir -p "$dir"
    (cd "$dir" && XDG_DATA_HOME="$dir/data" SERVER_NAME=127.0.0.1:0 MERCURE_PUBLISHER_JWT_KEY="$key" \
        MERCURE_SUBSCRIBER_JWT_KEY="$key" MERCURE_EXTRA_DIRECTIVES="$extra" \
        exec "$OLDPWD/build/mercure" run >"$dir/out" 2>"$dir/log") &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        port=$(grep -o 'listening on [^ ]*:[0-9]*' "$dir/log" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && return
        sleep 0.05
    done
    echo "hub $name did not start" >&2; exit 1
}

field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }

echo "| subscriptions | churn/s achieved | open p50 | open p99 | hub CPU per connect+leave |"
echo "|---|---|---|---|---|"
for mode in off on; do
    extra="anonymous"
    [ "$mode" = on ] && extra=$'anonymous\nsubscriptions'
    start_hub "$mode" "$extra"
    r=$(build/loadgen --port "$port" --hub-pid "$pid" --sub-churn "$rate" --duration "$secs" --label "$mode")
    echo "| $mode | $(echo "$r" | field churn_per_s) | $(echo "$r" | field open_p50_us) us | $(echo "$r" | field open_p99_us) us | $(echo "$r" | field hub_cpu_per_cycle_us) us |"
done
