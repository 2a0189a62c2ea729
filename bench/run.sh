#!/usr/bin/env bash
# The fan-out scenarios of bench/README.md, run in one go against Quicksilver, nginx+nchan
# and the raw write floor (bench/rawfloor.c), printing one JSON line per run and a table
# of ratios. Each target is started fresh for each scenario.
#
#   bench/run.sh [all|quick]      quick: smaller subscriber counts, for a smoke run
#   bench/run.sh tls|tls-quick    the TLS and HTTP/2 scenarios (T1-T3 of bench/README.md)
#
#   TARGETS="quicksilver floor"   run only these targets (default: quicksilver nchan floor;
#                                 for tls: quicksilver quicksilver+tls quicksilver+h2
#                                 nchan+tls nchan+h2). A target is a server, plain HTTP/1.1,
#                                 or followed by +tls (HTTP/1.1 over TLS), +h2 (HTTP/2 over
#                                 TLS, one subscriber stream per connection) or +h2xN (N
#                                 streams per connection).
#   BASELINE=<git revision>       also run Quicksilver built at that revision ("baseline",
#                                 "baseline+tls"…), to show that a change kept the figures in
#                                 the same run
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"
scripts/build build >/dev/null
command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || {
    echo "bench: installing nginx with nchan" >&2
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libnginx-mod-nchan nginx-light >/dev/null
}
key='!ChangeThisMercureHubJWTSecretKey!'
work=$(mktemp -d)
case "$mode" in
tls | tls-quick) default_targets="quicksilver quicksilver+tls quicksilver+h2 nchan+tls nchan+h2" ;;
*) default_targets="quicksilver nchan floor" ;;
esac
targets=(${TARGETS:-$default_targets})
baseline_bin=""
if [ -n "${BASELINE:-}" ]; then
    echo "bench: building the baseline $BASELINE" >&2
    git worktree add -q --detach "$work/baseline-src" "$BASELINE"
    cmake -S "$work/baseline-src" -B "$work/baseline-build" -G Ninja \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$work/baseline-build" --target mercure >/dev/null
    baseline_bin="$work/baseline-build/mercure"
    case "$mode" in
    tls | tls-quick) targets+=(baseline+tls) ;;
    *) targets+=(baseline) ;;
    esac
fi
results="$work/results.jsonl"
server_pids=()
cleanup() {
    for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    [ -z "$baseline_bin" ] || git worktree remove --force "$work/baseline-src" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The TLS scenarios' certificate (ECDSA P-256, self-signed; the load generator verifies it),
# for the hub and nginx alike.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start TARGET[+tls|+h2…] -> sets $port, $pids (comma-separated pids whose CPU/RSS count),
# $profile, $proto_args (the load generator's TLS and HTTP/2 options)
start() {
    local target=${1%%+*} proto="" dir="$work/${1%%+*}-$RANDOM"
    [[ "$1" == *+* ]] && proto=${1#*+}
    mkdir -p "$dir"
    port=$(free_port)
    local scheme="" site_tls="" listen="" nginx_tls=""
    proto_args=()
    case "$proto" in
    "") ;;
    tls) proto_args=(--tls --ca "$work/cert.pem") ;;
    h2) proto_args=(--tls --ca "$work/cert.pem" --h2) ;;
    h2x*) proto_args=(--tls --ca "$work/cert.pem" --h2 --streams-per-conn "${proto#h2x}") ;;
    *) echo "bench: unknown protocol $proto" >&2; exit 1 ;;
    esac
    if [ -n "$proto" ]; then
        scheme="https://" site_tls="tls $work/cert.pem $work/key.pem" listen="ssl http2"
        nginx_tls="ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;"
        nginx_tls+=" ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    case "$target" in
    quicksilver | baseline)
        local bin="$PWD/build/mercure"
        [ "$target" = baseline ] && bin="$baseline_bin"
        (cd "$dir" && XDG_DATA_HOME="$dir/data" SERVER_NAME="${scheme}127.0.0.1:$port" \
            CADDY_SERVER_EXTRA_DIRECTIVES="$site_tls" \
            MERCURE_PUBLISHER_JWT_KEY="$key" MERCURE_SUBSCRIBER_JWT_KEY="$key" \
            MERCURE_TRANSPORT_URL=local:// MERCURE_EXTRA_DIRECTIVES=$'anonymous\nwrite_timeout 0s' \
            exec "$bin" run >"$dir/out" 2>"$dir/log") &
        server_pids+=($!); pids=$!; profile=mercure; server_log="$dir/log" ;;
    nchan)
        mkdir -p "$dir/body"
        sed -e "s#@PORT@#$port#g" -e "s#@DIR@#$dir#g" -e "s#@LISTEN@#$listen#g" \
            -e "s#@TLS@#$nginx_tls#g" bench/nchan.conf.in >"$dir/nginx.conf"
        nginx -c "$dir/nginx.conf" -p "$dir" >"$dir/out" 2>&1 &
        server_pids+=($!)
        local master=$!
        sleep 0.5
        pids=$(pgrep -P "$master" | paste -sd, -)
        profile=nchan; server_log="$dir/error.log" ;;
    floor)
        [ -z "$proto" ] || { echo "bench: the floor speaks plain HTTP/1.1 only" >&2; exit 1; }
        build/rawfloor "$port" 2>"$dir/log" &
        server_pids+=($!); pids=$!; profile=mercure; server_log="$dir/log" ;;
    esac
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return
        sleep 0.05
    done
    echo "bench: $target did not start" >&2; exit 1
}

stop() {
    for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${server_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    server_pids=()
}

subs=10000; procs=4
[[ "$mode" == *quick ]] && subs=2000

# run TARGET LABEL loadgen-args...
run() {
    local target=$1 label=$2; shift 2
    start "$target"
    local line
    # --publish-for: a server slower than the requested load still ends the run (the
    # achieved rate is reported); timeout: nothing can hang the benchmark.
    line=$(timeout 300 build/loadgen --port "$port" --profile "$profile" --hub-pid "$pids" \
        --json --publish-for 40 --label "$label/$target" ${proto_args[@]+"${proto_args[@]}"} \
        "$@" || true)
    stop
    echo "$line" | tee -a "$results"
    # Failures or losses: what the server said about them.
    if [[ "$line" =~ \"(failed|losses)\":[1-9] ]]; then
        echo "bench: $label/$target: the server's log says:" >&2
        grep -vE 'listening on|serving http' "$server_log" \
            | sed -E 's#^[0-9][0-9T:.Z/-]+ ([0-9:]+ )?##; s/urn:uuid:[0-9a-f-]+/<id>/; s/[0-9]+#[0-9]+: \*[0-9]+ //' \
            | sort | uniq -c | sort -rn | head -5 >&2 || true
    fi
}

if [[ "$mode" == tls* ]]; then
    # Every server's RSS is sampled 2 s after its last subscriber opened: the hub gives back
    # the memory the handshakes left a second after the last one (src/sock.c).
    # T1: idle subscribers, memory per connection.
    for t in "${targets[@]}"; do
        run "$t" "T1-idle" --subscribers "$subs" --procs "$procs" --settle 2
    done
    # T2: the cost of a stream on an open HTTP/2 connection: 1 000 connections with 1 stream
    # each, then with 10 (the difference over 9 000 streams).
    conns=1000
    [ "$mode" = tls-quick ] && conns=200
    for t in "${targets[@]}"; do
        [[ "$t" == *+h2* ]] || continue
        for n in 1 10; do
            run "${t%%+*}+h2x$n" "T2-h2-${conns}x$n" --subscribers $((conns * n)) \
                --procs "$procs" --settle 2
        done
    done
    # T3: fan-out of one topic to every subscriber, sparse and dense.
    for t in "${targets[@]}"; do
        run "$t" "T3-one-topic-10/s" --subscribers "$subs" --procs "$procs" --topics 1 \
            --updates 200 --rate 10 --size 100 --settle 2
    done
    for t in "${targets[@]}"; do
        run "$t" "T3-one-topic-100/s" --subscribers "$subs" --procs "$procs" --topics 1 \
            --updates 1000 --rate 100 --size 100 --drain 30 --settle 2
    done
    python3 bench/table.py "$results"
    exit 0
fi

# Scenario by scenario, each target in turn, so that a change in the machine's load
# between two scenarios touches every target alike.
for t in "${targets[@]}"; do run "$t" "1-idle" --subscribers "$subs" --procs "$procs"; done
for t in "${targets[@]}"; do
    run "$t" "2-one-topic-10/s" --subscribers "$subs" --procs "$procs" --topics 1 \
        --updates 200 --rate 10 --size 100
done
for t in "${targets[@]}"; do
    run "$t" "2-one-topic-100/s" --subscribers "$subs" --procs "$procs" --topics 1 \
        --updates 1000 --rate 100 --size 100 --drain 30
done
for t in "${targets[@]}"; do
    run "$t" "3-1000-topics-5000/s" --subscribers "$subs" --procs "$procs" --topics 1000 \
        --updates 50000 --rate 5000 --publishers 16 --size 100
done
for t in "${targets[@]}"; do
    run "$t" "5-publisher-churn" --subscribers 100 --topics 10 --updates 10000 --rate 1000 \
        --publishers 100 --churn --size 100
done
# Scenario 4: URI-template subscribers, beside the same shape with exact topics.
for t in quicksilver baseline; do
    [[ " ${targets[*]} " == *" $t "* ]] || continue
    run "$t" "4-templates" --subscribers 1000 --procs 2 --topics 100 --templates \
        --updates 10000 --rate 1000 --publishers 8 --size 100
    run "$t" "4-exact-baseline" --subscribers 1000 --procs 2 --topics 100 \
        --updates 10000 --rate 1000 --publishers 8 --size 100
done

python3 bench/table.py "$results"
