#!/usr/bin/env bash
# Cluster mode over PostgreSQL, beside cluster mode over Redis and the single-node embedded
# store, in the same run:
#  1. publish-to-delivery latency at RATE publishes/s (p50, p99), with publishers on hub A
#     and SUBS subscribers on hub B (every update crosses the database), for PostgreSQL and
#     Redis, then the same load on one hub with the LMDB store;
#  2. publishes/s with 64 concurrent publishers (on hub A, a subscriber on hub B), and
#     through the store;
#  3. publishes/s through each transport alone (build/transport_tput: no HTTP), since in
#     (2) the load generator and the hubs share the machine's CPUs;
#  4. replay: REPLAY updates stored, then one subscriber asks for all of them
#     (Last-Event-ID: earliest), through PostgreSQL and through the store.
# Durability is the same everywhere: PostgreSQL with fsync and synchronous_commit on (its
# defaults), Redis with appendfsync always, LMDB with its fsync per commit.
# loadgen waits about half a second for deliveries after its last publish and exits 3 when
# some are missing: the "delivered" column says how many arrived by then, and the script
# goes on.
#
#   bench/postgres.sh [RATE] [SECONDS] [SUBS] [UPDATES_MAX] [REPLAY]
rate="${1:-1000}"
secs="${2:-10}"
subs="${3:-100}"
max_updates="${4:-100000}"
replay="${5:-200000}"
source "$(dirname "$0")/lib.sh"

# PostgreSQL refuses to run as root: as root, it runs as the postgres user, in a folder
# that user owns.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "bench/postgres.sh: PostgreSQL is not installed" >&2; exit 1; }
as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
pgdir=$(mktemp -d)
chmod 755 "$pgdir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$pgdir"
pgport=$(free_port)
stop_postgres() {
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pgdir" || true
}
trap 'stop_postgres; bench_cleanup' EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-locale \
    >/dev/null
pgopts="-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=on"
pgopts+=" -c synchronous_commit=on -c max_connections=100"
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -t 60 -o "$pgopts" start \
    >/dev/null
psql() { "$pgbin/psql" -X -q -h "$pgdir" -p "$pgport" -U postgres "$@"; }
for db in bench tput replay; do psql -c "CREATE DATABASE $db"; done

rport=$(free_port)
mkdir -p "$work/redis"
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly yes --appendfsync always \
    --dir "$work/redis" --logfile "$work/redis/log" &
pids+=($!)
for _ in $(seq 100); do
    redis-cli -p "$rport" ping >/dev/null 2>&1 && break
    sleep 0.05
done

pg_url="postgres://postgres@127.0.0.1:$pgport"
start_hub pg_a "$pg_url/bench"; pg_a=$port
start_hub pg_b "$pg_url/bench"; pg_b=$port
start_hub redis_a "redis://127.0.0.1:$rport/bench"; redis_a=$port
start_hub redis_b "redis://127.0.0.1:$rport/bench"; redis_b=$port
start_hub lmdb "lmdb://$work/store.db"; lmdb_port=$port

updates=$(awk "BEGIN{print int($rate*$secs)}")
echo "latency at $rate publishes/s for ${secs}s ($(nproc) CPUs; PostgreSQL fsync and" \
    "synchronous_commit on, Redis appendfsync always)"
echo
latency_header
for n in 1 "$subs"; do
    p=$(build/loadgen --port "$pg_b" --pub-port "$pg_a" --subscribers "$n" --publishers 4 \
        --rate "$rate" --updates "$updates" --json || true)
    latency_row "postgres, $n sub | hub A -> PostgreSQL -> hub B" "$p"
    r=$(build/loadgen --port "$redis_b" --pub-port "$redis_a" --subscribers "$n" --publishers 4 \
        --rate "$rate" --updates "$updates" --json || true)
    latency_row "redis, $n sub | hub A -> Redis -> hub B" "$r"
    l=$(build/loadgen --port "$lmdb_port" --subscribers "$n" --publishers 4 --rate "$rate" \
        --updates "$updates" --json || true)
    latency_row "lmdb, $n sub | one hub" "$l"
    lp99=$(field lat_p99_us <<<"$l")
    echo "| added p99, $n sub | postgres across nodes - lmdb | |" \
        "$(awk "BEGIN{print $(field lat_p99_us <<<"$p") - $lp99}") us | | | |"
    echo "| added p99, $n sub | redis across nodes - lmdb | |" \
        "$(awk "BEGIN{print $(field lat_p99_us <<<"$r") - $lp99}") us | | | |"
done

echo
tput_header
p=$(build/loadgen --port "$pg_b" --pub-port "$pg_a" --subscribers 1 --publishers 64 \
    --updates "$max_updates" --json || true)
tput_row "postgres (A publishes, B delivers)" "$p"
r=$(build/loadgen --port "$redis_b" --pub-port "$redis_a" --subscribers 1 --publishers 64 \
    --updates "$max_updates" --json || true)
tput_row "redis (A publishes, B delivers)" "$r"
l=$(build/loadgen --port "$lmdb_port" --subscribers 1 --publishers 64 --updates "$max_updates" \
    --json || true)
tput_row "lmdb" "$l"

# The transports alone (no HTTP, no load generator sharing the CPUs): 64 publishes in
# flight, each update also coming back on the bus.
echo
echo "| transport alone | in flight | publishes/s |"
echo "|---|---|---|"
p=$(build/transport_tput "$pg_url/tput" "$max_updates" 64 2>/dev/null)
echo "| postgres | 64 | $(field publishes_per_s <<<"$p") |"
r=$(build/transport_tput "redis://127.0.0.1:$rport/tput" "$max_updates" 64 2>/dev/null)
echo "| redis | 64 | $(field publishes_per_s <<<"$r") |"
l=$(build/transport_tput "lmdb://$work/tput.db" "$max_updates" 64 2>/dev/null)
echo "| lmdb | 64 | $(field publishes_per_s <<<"$l") |"

# Replay: a fresh database (and store) filled with $replay updates, then one subscriber asks
# for all of them.
start_hub pg_replay "$pg_url/replay"; pg_replay=$port
start_hub lmdb_replay "lmdb://$work/replay.db"; lmdb_replay=$port
echo
echo "| transport | replayed | seconds | events/s |"
echo "|---|---|---|---|"
for t in postgres lmdb; do
    port_var="${t/postgres/pg}_replay"
    j=$(build/loadgen --port "${!port_var}" --publishers 64 --updates "$replay" --replay --json \
        || true)
    echo "| $t | $(field replayed <<<"$j") | $(field replay_s <<<"$j") |" \
        "$(field replay_events_per_s <<<"$j") |"
done
