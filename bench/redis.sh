#!/usr/bin/env bash
# Cluster mode over Redis, beside the single-node embedded store in the same run:
#  1. publish-to-delivery latency at RATE publishes/s (p50, p99), with publishers on hub A
#     and SUBS subscribers on hub B (both on one Redis stream: every update crosses Redis),
#     then the same load on one hub with the LMDB store (publishers and subscribers on it);
#  2. publishes/s with 64 concurrent publishers through Redis (on hub A, subscribers on
#     hub B), and through the store;
#  3. publishes/s through each transport alone (build/transport_tput: no HTTP), since in
#     (2) the load generator and the hubs share the machine's CPUs.
# redis-server runs with the durability the transport's guarantees assume (AOF,
# appendfsync always); set FSYNC=everysec to compare.
#
#   bench/redis.sh [RATE] [SECONDS] [SUBS] [UPDATES_MAX]
rate="${1:-1000}"
secs="${2:-10}"
subs="${3:-100}"
max_updates="${4:-100000}"
fsync="${FSYNC:-always}"
source "$(dirname "$0")/lib.sh"

rport=$(free_port)
mkdir -p "$work/redis"
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly yes --appendfsync "$fsync" \
    --dir "$work/redis" --logfile "$work/redis/log" &
pids+=($!)
for _ in $(seq 100); do
    redis-cli -p "$rport" ping >/dev/null 2>&1 && break
    sleep 0.05
done

start_hub a "redis://127.0.0.1:$rport/bench"; a_port=$port
start_hub b "redis://127.0.0.1:$rport/bench"; b_port=$port
start_hub lmdb "lmdb://$work/store.db"; lmdb_port=$port

updates=$(awk "BEGIN{print int($rate*$secs)}")
echo "latency at $rate publishes/s for ${secs}s (redis: AOF appendfsync $fsync, $(nproc) CPUs)"
echo
latency_header
for n in 1 "$subs"; do
    r=$(build/loadgen --port "$b_port" --pub-port "$a_port" --subscribers "$n" --publishers 4 \
        --rate "$rate" --updates "$updates" --json)
    latency_row "redis, $n sub | hub A -> Redis -> hub B" "$r"
    r_same=$(build/loadgen --port "$a_port" --subscribers "$n" --publishers 4 --rate "$rate" \
        --updates "$updates" --json)
    latency_row "redis, $n sub | hub A -> Redis -> hub A" "$r_same"
    l=$(build/loadgen --port "$lmdb_port" --subscribers "$n" --publishers 4 --rate "$rate" \
        --updates "$updates" --json)
    latency_row "lmdb, $n sub | one hub" "$l"
    added="$(awk "BEGIN{print $(echo "$r" | field lat_p99_us) - $(echo "$l" | field lat_p99_us)}")"
    echo "| added p99, $n sub | redis across nodes - lmdb | | $added us | | | |"
done

echo
tput_header
r=$(build/loadgen --port "$b_port" --pub-port "$a_port" --subscribers 1 --publishers 64 \
    --updates "$max_updates" --json)
tput_row "redis (A publishes, B delivers)" "$r"
l=$(build/loadgen --port "$lmdb_port" --subscribers 1 --publishers 64 --updates "$max_updates" \
    --json)
tput_row "lmdb" "$l"

# The transports alone (no HTTP, no load generator sharing the CPUs): 64 publishes in
# flight, each update also coming back on the bus.
echo
echo "| transport alone | in flight | publishes/s |"
echo "|---|---|---|"
r=$(build/transport_tput "redis://127.0.0.1:$rport/tput" "$max_updates" 64 2>/dev/null)
echo "| redis | 64 | $(echo "$r" | field publishes_per_s) |"
l=$(build/transport_tput "lmdb://$work/tput.db" "$max_updates" 64 2>/dev/null)
echo "| lmdb | 64 | $(echo "$l" | field publishes_per_s) |"
