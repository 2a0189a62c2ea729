#!/usr/bin/env bash
# Subscriber churn — subscribers connecting and leaving at RATE per second — with the
# `subscriptions` directive on (every arrival and departure is an event stored in the
# embedded store and an entry in the registry) versus off, in the same run.
#
#   bench/presence.sh [RATE] [SECONDS]
rate="${1:-1000}"
secs="${2:-10}"
source "$(dirname "$0")/lib.sh"

echo "| subscriptions | churn/s achieved | open p50 | open p99 | hub CPU per connect+leave |"
echo "|---|---|---|---|---|"
for mode in off on; do
    extra="anonymous"
    [ "$mode" = on ] && extra=$'anonymous\nsubscriptions'
    start_hub "$mode" "" "$extra"
    r=$(build/loadgen --port "$port" --hub-pid "$pid" --sub-churn "$rate" --duration "$secs" --label "$mode")
    echo "| $mode | $(echo "$r" | field churn_per_s) | $(echo "$r" | field open_p50_us) us | $(echo "$r" | field open_p99_us) us | $(echo "$r" | field hub_cpu_per_cycle_us) us |"
done
