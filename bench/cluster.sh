# Cluster mode over one broker (bench/kafka.sh, bench/pulsar.sh: sourced, not run), beside
# Redis and the single-node embedded store in the same run (same machine, same load):
#  1. publish-to-delivery latency at RATE publishes/s (p50, p99), publishers on hub A and
#     SUBS subscribers on hub B (every update crosses the broker), for the broker and for
#     Redis, then one hub with the LMDB store (the baseline of "added" latency);
#  2. publishes/s with 64 concurrent publishers through the broker and through Redis (A
#     publishes, B delivers);
#  3. publishes/s through each transport alone (build/transport_tput: no HTTP);
#  4. replay: a subscriber on a hub started after UPDATES updates asks for all of them
#     (Last-Event-ID earliest); events/s until the last one arrives, broker and Redis. The
#     hub's start (reading the topic to build its id index) is timed too.
# The broker is started by tests/integration/<label>_broker.py run (its jars resolved by
# Maven into .cache/<label>); redis-server with appendfsync everysec.
#
# The sourcing script sets: name (Kafka), label (kafka), broker_url TOPIC (a function: the
# hubs' transport URL, the broker's printed address in $broker), broker_start_s (how long
# the broker may take to start) and warm_updates (publishes before measuring).
rate="${1:-1000}"
secs="${2:-10}"
subs="${3:-100}"
max_updates="${4:-100000}"
source "$(dirname "$0")/lib.sh"

mkdir -p "$work/broker" "$work/redis"
python3 "tests/integration/${label}_broker.py" run "$work/broker/data" >"$work/broker/address" &
pids+=($!)
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly yes \
    --appendfsync everysec --dir "$work/redis" --logfile "$work/redis/log" &
pids+=($!)
for _ in $(seq $((broker_start_s * 5))); do
    [ -s "$work/broker/address" ] && break
    sleep 0.2
done
broker=$(cat "$work/broker/address")
[ -n "$broker" ] || { echo "the $name broker did not start" >&2; exit 1; }
for _ in $(seq 100); do
    redis-cli -p "$rport" ping >/dev/null 2>&1 && break
    sleep 0.05
done
start_hub ka "$(broker_url bench)"; ka_port=$port
start_hub kb "$(broker_url bench)"; kb_port=$port
start_hub ra "redis://127.0.0.1:$rport/bench"; ra_port=$port
start_hub rb "redis://127.0.0.1:$rport/bench"; rb_port=$port
start_hub lmdb "lmdb://$work/store.db"; lmdb_port=$port

# Warm-up, not measured: the broker's JVM compiles its hot paths during its first requests,
# and a fresh broker measured up to three times slower; the figures below are those of a
# broker that has served some traffic, as a production broker has.
build/loadgen --port "$kb_port" --pub-port "$ka_port" --subscribers 1 --publishers 64 \
    --updates "$warm_updates" --json >/dev/null || true
updates=$(awk "BEGIN{print int($rate*$secs)}")
echo "latency at $rate publishes/s for ${secs}s ($(nproc) CPUs; $name $broker, Redis everysec)"
echo
latency_header
for n in 1 "$subs"; do
    k=$(build/loadgen --port "$kb_port" --pub-port "$ka_port" --subscribers "$n" --publishers 4 \
        --rate "$rate" --updates "$updates" --json)
    latency_row "$label, $n sub | hub A -> $name -> hub B" "$k"
    r=$(build/loadgen --port "$rb_port" --pub-port "$ra_port" --subscribers "$n" --publishers 4 \
        --rate "$rate" --updates "$updates" --json)
    latency_row "redis, $n sub | hub A -> Redis -> hub B" "$r"
    l=$(build/loadgen --port "$lmdb_port" --subscribers "$n" --publishers 4 --rate "$rate" \
        --updates "$updates" --json)
    latency_row "lmdb, $n sub | one hub" "$l"
    for t in "$label" redis; do
        j=$k; [ $t = redis ] && j=$r
        added="$(awk "BEGIN{print $(field lat_p99_us <<<"$j") - $(field lat_p99_us <<<"$l")}")"
        echo "| added p99, $n sub | $t across nodes - lmdb | | $added us | | | |"
    done
done

echo
tput_header
k=$(build/loadgen --port "$kb_port" --pub-port "$ka_port" --subscribers 1 --publishers 64 \
    --updates "$max_updates" --json)
tput_row "$label (A publishes, B delivers)" "$k"
r=$(build/loadgen --port "$rb_port" --pub-port "$ra_port" --subscribers 1 --publishers 64 \
    --updates "$max_updates" --json)
tput_row "redis (A publishes, B delivers)" "$r"

echo
echo "| transport alone | in flight | publishes/s |"
echo "|---|---|---|"
k=$(build/transport_tput "$(broker_url tput)" "$max_updates" 64 2>/dev/null)
echo "| $label | 64 | $(field publishes_per_s <<<"$k") |"
r=$(build/transport_tput "redis://127.0.0.1:$rport/tput" "$max_updates" 64 2>/dev/null)
echo "| redis | 64 | $(field publishes_per_s <<<"$r") |"

# Replay: a fresh hub on each `tput` stream/topic (max_updates updates of 100 bytes), one
# subscriber asking for everything. Its start (reading the topic to index it) is timed too.
replay() { # port expected -> "events/s seconds"
    python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, want = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
t0 = time.monotonic()
s.sendall(b"GET /.well-known/mercure?topic=*&lastEventID=earliest HTTP/1.1\r\n"
          b"Host: x\r\n\r\n")
seen, tail = 0, b""
while seen < want:
    chunk = s.recv(1 << 20)
    if not chunk:
        break
    seen += (tail + chunk).count(b"\nid: ") - tail.count(b"\nid: ")
    tail = chunk[-8:]
dt = time.monotonic() - t0
print("%d %.3f %d" % (seen / dt, dt, seen))
PY
}
echo
echo "| transport | updates in history | hub start | replay events/s | replay time |"
echo "|---|---|---|---|---|"
t0=$(date +%s.%N)
start_hub kr "$(broker_url tput)"
t1=$(date +%s.%N)
read -r eps dt seen < <(replay "$port" "$max_updates")
echo "| $label | $seen | $(awk "BEGIN{printf \"%.2f s\", $t1-$t0}") | $eps | $dt s |"
t0=$(date +%s.%N)
start_hub rr "redis://127.0.0.1:$rport/tput"
t1=$(date +%s.%N)
read -r eps dt seen < <(replay "$port" "$max_updates")
echo "| redis | $seen | $(awk "BEGIN{printf \"%.2f s\", $t1-$t0}") | $eps | $dt s |"
