# Shared by the bench/ scripts (sourced, not run): a work directory removed on exit with
# every process started from here, free ports, hubs started on an ephemeral port, and a
# reader for the load generator's JSON lines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/build build >/dev/null
key='!ChangeThisMercureHubJWTSecretKey!'
work=$(mktemp -d)
pids=()
bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true # servers may still be writing in $work
    rm -rf "$work"
}
trap bench_cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_hub NAME TRANSPORT_URL [EXTRA_DIRECTIVES]: starts build/mercure on an ephemeral port
# with its own data directory; sets $port and $pid.
start_hub() {
    local name=$1 url=$2 extra=${3:-anonymous} dir="$work/$1"
    mkdir -p "$dir"
    (cd "$dir" && XDG_DATA_HOME="$dir/data" SERVER_NAME=127.0.0.1:0 \
        MERCURE_PUBLISHER_JWT_KEY="$key" MERCURE_SUBSCRIBER_JWT_KEY="$key" \
        MERCURE_TRANSPORT_URL="$url" MERCURE_EXTRA_DIRECTIVES="$extra" \
        exec "$OLDPWD/build/mercure" run >"$dir/out" 2>"$dir/log") &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        port=$(grep -o 'listening on [^ ]*:[0-9]*' "$dir/log" 2>/dev/null \
            | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && return
        sleep 0.05
    done
    echo "hub $name did not start: $(cat "$dir/log")" >&2
    exit 1
}

# field NAME: the number NAME in the JSON line on stdin.
field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }

# The cluster benches' tables (bench/cluster.sh, postgres.sh, redis.sh): a header, then one
# row per load generator run (label, its JSON line).
latency_header() {
    echo "| transport | path | p50 | p99 | p99.9 | delivered | publish p99 |"
    echo "|---|---|---|---|---|---|---|"
}
latency_row() { # label json
    local j=$2
    echo "| $1 | $(field lat_p50_us <<<"$j") us | $(field lat_p99_us <<<"$j") us" \
        "| $(field lat_p999_us <<<"$j") us | $(field received <<<"$j")/$(field expected <<<"$j")" \
        "| $(field publish_p99_us <<<"$j") us |"
}
tput_header() {
    echo "| transport | publishers | publishes/s | publish p50 | publish p99 | delivered |"
    echo "|---|---|---|---|---|---|"
}
tput_row() { # label json
    local j=$2
    echo "| $1 | 64 | $(field publishes_per_s <<<"$j") | $(field publish_p50_us <<<"$j") us" \
        "| $(field publish_p99_us <<<"$j") us" \
        "| $(field received <<<"$j")/$(field expected <<<"$j") |"
}
