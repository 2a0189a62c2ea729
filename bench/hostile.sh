#!/usr/bin/env bash
# Hostile URI templates (issue 11): publish-to-delivery latency of a normal subscriber (a URI
# template) for updates to topics never seen before, and the time of GET /healthz, while COUNT
# hostile subscribers are connected (none; the selector of the issue; at the default limits,
# the largest automatons; at the limits, the most templates), for this tree and, in the same
# run, for the code before the selector limits (BASE, built from git; "none" skips it).
# Each row is a fresh hub with the `local` transport; bench/hostile.py is the client.
# KINDS picks the rows (default: none wide many attack); the URL-pattern kinds of protocol
# 1.0 (pnone pwide pmany) run on a hub serving both generations, for this tree only
# (KINDS="pnone pwide pmany" BASE=none).
#
#   bench/hostile.sh [UPDATES] [COUNT] [BASE]
#
# BASE defaults to the parent of the commit that introduced qs_uritemplate_measure.
updates="${1:-200}"
count="${2:-100}"
base="${3:-auto}"
source "$(dirname "$0")/lib.sh"

if [ "$base" = auto ]; then
    first=$(git log --reverse --format=%H -S qs_uritemplate_measure -- src/uritemplate.h | head -1)
    base=${first:+$first^}
fi
binaries=("$PWD/build/mercure")
names=("this tree")
if [ -n "$base" ] && [ "$base" != none ]; then
    mkdir -p "$work/base"
    git archive "$base" | tar -x -C "$work/base"
    cmake -S "$work/base" -B "$work/base/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$work/base/build" --target mercure >/dev/null
    binaries+=("$work/base/build/mercure")
    names+=("before ($(git rev-parse --short "$base"))")
fi

# start_binary NAME BINARY: like lib.sh's start_hub, with a given binary; sets $port, $pid.
start_binary() {
    local name=$1 bin=$2 dir="$work/$1"
    mkdir -p "$dir"
    (cd "$dir" && XDG_DATA_HOME="$dir/data" SERVER_NAME=127.0.0.1:0 \
        MERCURE_PUBLISHER_JWT_KEY="$key" MERCURE_SUBSCRIBER_JWT_KEY="$key" \
        MERCURE_TRANSPORT_URL="local://" MERCURE_EXTRA_DIRECTIVES="${3:-anonymous}" \
        exec "$bin" run >"$dir/out" 2>"$dir/log") &
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

echo "| code | $count hostile subscribers | accepted | p50 | p90 | p99 | max | /healthz p50 | /healthz max | p50 / p50 without |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for b in "${!binaries[@]}"; do
    base_p50=""
    for kind in ${KINDS:-none wide many attack}; do
        n=$updates
        # The issue's selector takes seconds per update on the old code: fewer updates.
        [ "$kind" = attack ] && n=$(( updates / 10 > 10 ? updates / 10 : 10 ))
        extra=anonymous
        [[ "$kind" == p* ]] && extra=$'anonymous\nprotocol 0.x 1.0'
        start_binary "h$b-$kind" "${binaries[$b]}" "$extra"
        r=$(python3 bench/hostile.py --port "$port" --key "$key" --hostile "$kind" \
            --count "$count" --updates "$n" --label "$kind")
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        p50=$(echo "$r" | field p50_ms)
        [[ "$kind" == none || "$kind" == pnone ]] && base_p50=$p50
        accepted=$(echo "$r" | field accepted)
        [[ "$kind" == none || "$kind" == pnone ]] && accepted="-"
        echo "| ${names[$b]} | $kind | $accepted | $p50 ms | $(echo "$r" | field p90_ms) ms | $(echo "$r" | field p99_ms) ms | $(echo "$r" | field max_ms) ms | $(echo "$r" | field healthz_p50_ms) ms | $(echo "$r" | field healthz_max_ms) ms | $(awk "BEGIN{printf \"%.2f\", $p50/$base_p50}") |"
    done
done
