#!/usr/bin/env bash
# URL Pattern selectors (protocol 1.0) against exact selectors of the same shape, in the same
# run: SUBS subscribers over TOPICS topics, each subscriber with one selector, publishes at
# RATE/s. "exact": 0.x topic=https://bench.example/t/N (a hash lookup per update);
# "urlpattern": 1.0 match_urlpattern=https://bench.example/:kind/N (every pattern tried per
# update through the (selector, topic) cache, the topic parsed at most once). Both on the same
# hub configuration (protocol 0.x 1.0, local transport), alternated ROUNDS times; prints one
# JSON line per run and the ratio of hub CPU per delivery, pattern over exact.
#
#   bench/urlpattern.sh [SUBS] [TOPICS] [RATE] [UPDATES] [ROUNDS]
subs="${1:-1000}"
topics="${2:-100}"
rate="${3:-1000}"
updates="${4:-10000}"
rounds="${5:-3}"
source "$(dirname "$0")/lib.sh"

run() {
    local label=$1; shift
    start_hub "$label-$RANDOM" local:// $'anonymous\nwrite_timeout 0s\nprotocol 0.x 1.0'
    timeout 300 build/loadgen --port "$port" --hub-pid "$pid" --json --label "$label" \
        --subscribers "$subs" --procs 2 --topics "$topics" --updates "$updates" \
        --rate "$rate" --publishers 8 --size 100 --publish-for 40 "$@" || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

results="$work/results.jsonl"
for _ in $(seq "$rounds"); do
    run exact | tee -a "$results"
    run urlpattern --urlpatterns | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
med = {k: statistics.median(r["cpu_per_delivery_us"] for r in v) for k, v in by.items()}
for k, v in by.items():
    print("%-10s cpu/delivery %s us (median %.2f), losses %s" % (
        k, ", ".join("%.2f" % r["cpu_per_delivery_us"] for r in v), med[k],
        sum(r["losses"] for r in v)))
print("urlpattern / exact, CPU per delivery (medians): %.2f" % (med["urlpattern"] / med["exact"]))
PY
