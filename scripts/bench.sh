#!/usr/bin/env bash
# Benchmarks of the chat server against a tokio echo baseline and, for fan-out, against
# Redis pub/sub and NATS, and of two server nodes clustered through Redis against one,
# on 127.0.0.1 only.
#
# Usage: bash scripts/bench.sh [--quick] [--reps N] [--duration SECS] [--out DIR]
#        [--only echo,coalesce,baseline,sendwindow,search,fanout,brokers,cluster,
#                metrics,tls,history,history-memory,idle]
#        [--previous SERVER_BIN] [--ladder "RATES"] [--ladder-window D]
#        [--dry-run]
#
# Starts every server it measures itself (release builds), runs loadgen against it,
# stops it, and writes under --out (default results/bench-<UTC time>/):
#   *.csv, *.hgrm, *.hlog, *.series.csv   loadgen's own results, one summary CSV per point
#   server_cpu.csv                        server CPU time per message, per run (for a
#                                         cluster: both nodes, and ~a, ~b, ~redis apart),
#                                         and the ms per second its threads waited for a
#                                         core (server_wait_ms_per_s)
#   (sendwindow: loadgen's own CPU per message is its summary's loadgen_cpu_us_per_msg)
#   ladder.csv, search.csv                p99 at each ladder rate; highest rate per bound
#   idle.csv                              RSS per idle connection, idle CPU
#   history.csv                           history kept and RSS of rooms filled past their limit, on and off
#   summary.md                            medians of every point and the ratios
#   report.html                           `loadgen report` of every point's runs
#   compare.txt                           `loadgen compare` of every point's runs
#   echo.svg, fanout.svg, brokers.svg     `loadgen plot` percentile spectra
#   logs/RUN.server.log, RUN.loadgen.log  each run's server and loadgen output
# Every point is repeated --reps times (default 3) and medians are reported: this
# machine's 2 cores are shared by the server and the load generator. --quick (200
# clients, 3 s runs, one rep, a short ladder) checks that everything works; a --reps or
# --duration given with it still counts. A loadgen run that fails, or that does not add
# exactly one row to its summary CSV, stops the script with the reason. --dry-run prints
# the settings and exits. The Python helpers are in scripts/bench.py.
# --previous SERVER_BIN adds an A/B of another build of the server (say, the last
# release) against this one: echo with 1 and 2 workers and fan-out to a room, the two
# builds in turn at every rep (labels this-* and previous-*), compared in summary.md.
# The brokers section needs redis-server and nats-server (Debian's packages), the
# cluster section redis-server.
# loadgen runs with its default --send-window (1ms: the messages of a thread due within
# a millisecond leave together) except in the rate ladder, whose 1 ms p99 bound a hold of
# up to 1 ms would eat, and in the sendwindow point, which compares 0 and 1ms.
# --ladder "RATES" sets the ladder's rates per client (default "50 75 100 125 150"; a
# ladder starting above 50 finds the highest passing rate only if its first rung
# passes) and --ladder-window its send window (default 0; 1ms for the 10 ms bound, so
# that loadgen is not what saturates).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Empty until given: --quick changes only the defaults of what was not given.
reps=""
duration=""
quick=0
dry_run=0
only="echo,coalesce,baseline,sendwindow,search,fanout,brokers,cluster,metrics,tls,history,history-memory,idle"
out=""
previous=""
ladder=""
ladder_window=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --reps) reps=$2; shift ;;
        --duration) duration=$2; shift ;;
        --out) out=$2; shift ;;
        --only) only=$2; shift ;;
        --previous) previous=$2; shift ;;
        --ladder) ladder=$2; shift ;;
        --ladder-window) ladder_window=$2; shift ;;
        --dry-run) dry_run=1 ;;
        -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" -eq 1 ]; then
    reps=${reps:-1}; duration=${duration:-3}; warmup=1; clients=200
else
    reps=${reps:-3}; duration=${duration:-10}; warmup=3; clients=1000
fi
rate=50
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${out:-results/bench-$stamp}
if [ "$dry_run" -eq 1 ]; then
    echo "reps $reps, duration ${duration}s, warmup ${warmup}s, clients $clients x ${rate}/s, only $only, out $out"
    exit 0
fi
mkdir -p "$out/logs"
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
die() { echo "bench.sh: $*" >&2; exit 1; }
bench_py() { python3 "$root/scripts/bench.py" "$@"; }

target=${CARGO_TARGET_DIR:-$root/target}
echo "==> building release binaries"
cargo build --release --locked -q -p server -p loadgen -p baseline
server_bin=$target/release/server
loadgen_bin=$target/release/loadgen
tokio_bin=$target/release/tokio-echo
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

server_pid=""
addr=""
idle_pid=""
scraper_pid=""
node_b_pid=""
redis_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    [ -n "$scraper_pid" ] && kill -9 "$scraper_pid" 2>/dev/null || true
    [ -n "$idle_pid" ] && kill -9 "$idle_pid" 2>/dev/null || true
    [ -n "$node_b_pid" ] && kill -9 "$node_b_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill -9 "$redis_pid" 2>/dev/null || true
}
trap cleanup EXIT

# start_server RUN CMD...: starts a server that prints "listening on ADDR", with its
# output (stderr too) in logs/RUN.server.log; sets server_pid and addr.
start_server() {
    local log=$out/logs/$1.server.log
    shift
    "$@" >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 200); do
        addr=$(sed -n 's/^listening on //p' "$log" | head -n 1)
        [ -n "$addr" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    die "server did not start: $* (see $log)"
}

stop_server() {
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# CPU ticks (utime + stime) of a process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Nanoseconds the threads of a process have waited, runnable, for a core (summed; empty
# where the kernel keeps no scheduler statistics).
sched_wait() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {if (NR) printf "%.0f\n", s}'
}
hz=$(getconf CLK_TCK)

# run_loadgen RUN LABEL LOADGEN_ARGS...: one loadgen run against $addr, its output in
# logs/RUN.loadgen.log. Stops the script if loadgen fails or its summary CSV did not get
# exactly one new row (a failed run must not pass off the previous run's numbers as
# its own); sets `row` to that new row's received, p99_us, p999_us and lost.
run_loadgen() {
    local run=$1 label=$2; shift 2
    local csv=$out/$label.csv log=$out/logs/$run.loadgen.log before status=0
    before=$(bench_py rows "$csv")
    "$loadgen_bin" --addr "$addr" --out "$out" --label "$label" "$@" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        die "$run: loadgen exited $status: $(tail -n 1 "$log") (see $log)"
    fi
    row=$(bench_py new-row "$csv" "$before" received p99_us p999_us lost) ||
        die "$run: see $log"
}

# start_broker RUN redis|nats: starts redis-server or nats-server on a free port of
# 127.0.0.1, nothing persisted, its output in logs/RUN.server.log; sets server_pid and
# addr once it accepts connections.
start_broker() {
    local log=$out/logs/$1.server.log port
    port=$(bench_py free-port)
    case "$2" in
        redis) "$redis_bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            >"$log" 2>&1 & ;;
        nats) "$nats_bin" -a 127.0.0.1 -p "$port" >"$log" 2>&1 & ;;
        *) die "start_broker: unknown broker $2" ;;
    esac
    server_pid=$!
    addr=127.0.0.1:$port
    bench_py wait-port "$addr" 10 && kill -0 "$server_pid" 2>/dev/null ||
        die "$2 did not start on $addr (see $log)"
}

# find_broker PROGRAM: the path of redis-server or nats-server (Debian puts the latter
# in /usr/sbin, outside a normal user's PATH).
find_broker() {
    command -v "$1" 2>/dev/null && return 0
    [ -x "/usr/sbin/$1" ] && { echo "/usr/sbin/$1"; return 0; }
    die "$1 is not installed; the brokers section needs it (Debian package $1)"
}

# run_point LABEL SERVER_CMD... -- LOADGEN_ARGS...: one measured run per rep, each
# against a fresh server; server CPU per received message goes to server_cpu.csv. Runs
# are named LABEL.N, N the rep, or $round where a caller interleaves points by rep.
# SERVER_CMD is started by $starter (start_server unless a caller sets it).
round=""
starter=""
run_point() {
    local label=$1; shift
    local server_cmd=()
    while [ "$1" != "--" ]; do server_cmd+=("$1"); shift; done
    shift
    for rep in $(seq "$reps"); do
        local n=${round:-$rep} t0 t1 w0 w1 c0 c1 received p99 p999 lost cpu
        "${starter:-start_server}" "$label.$n" "${server_cmd[@]}"
        t0=$(cpu_ticks "$server_pid") w0=$(sched_wait "$server_pid") c0=$(date +%s%N)
        run_loadgen "$label.$n" "$label" --duration "${duration}s" --warmup "${warmup}s" "$@"
        t1=$(cpu_ticks "$server_pid") w1=$(sched_wait "$server_pid") c1=$(date +%s%N)
        stop_server
        read -r received p99 p999 lost <<<"$row"
        cpu=$(bench_py server-cpu "$out/server_cpu.csv" "$label" "$n" "$t0" "$t1" "$hz" \
            "$received" "$warmup" "$duration" "$w0" "$w1" "$c0" "$c1")
        printf '    %-22s rep %s: p99 %s us, p99.9 %s us, lost %s, server cpu %s us/msg, waited %s ms/s\n' \
            "$label" "$n" "$p99" "$p999" "$lost" "$cpu" \
            "$(tail -n 1 "$out/server_cpu.csv" | cut -d, -f6)"
    done
}

if want echo; then
    echo "==> echo: $clients clients x $rate/s against server --workers W"
    for w in 1 2 4 8; do
        run_point "echo-w$w" "$server_bin" --bind 127.0.0.1:0 --workers "$w" -q -- \
            --clients "$clients" --rate "$rate" --scenario echo --protocol binary
    done
fi

if want coalesce; then
    echo "==> coalesce: the same echo load against server --workers 1 --coalesce WINDOW"
    for window in 100us 250us; do
        run_point "echo-w1-c$window" "$server_bin" --bind 127.0.0.1:0 --workers 1 \
            --coalesce "$window" -q -- \
            --clients "$clients" --rate "$rate" --scenario echo --protocol binary
    done
fi

if want baseline; then
    echo "==> baseline: tokio echo server, loadgen --protocol line, same load"
    run_point "tokio-line" "$tokio_bin" --bind 127.0.0.1:0 -- \
        --clients "$clients" --rate "$rate" --protocol line
    # Our server driven the same way (text mode /echo) for a like-for-like ratio.
    run_point "server-text-w2" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q -- \
        --clients "$clients" --rate "$rate" --protocol text
fi

# loadgen's send window on and off: echo against our server and against the tokio
# baseline, --send-window 0 and 1ms in turn at every rep (labels sw0-*, sw1ms-*), so
# loadgen's and the servers' CPU per message are compared on the same machine minutes.
if want sendwindow; then
    echo "==> sendwindow: echo with loadgen --send-window 0 and 1ms, server and tokio in turn"
    all_reps=$reps
    reps=1
    for rep in $(seq "$all_reps"); do
        round=$rep
        for window in 0 1ms; do
            run_point "sw$window-server-echo" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q -- \
                --clients "$clients" --rate "$rate" --scenario echo --protocol binary \
                --send-window "$window"
            run_point "sw$window-tokio-line" "$tokio_bin" --bind 127.0.0.1:0 -- \
                --clients "$clients" --rate "$rate" --protocol line --send-window "$window"
        done
    done
    reps=$all_reps
    round=""
fi

# run_once LABEL PROTOCOL RATE REP SERVER_CMD...: one ladder run; sets ok_p99, ok_lost.
run_once() {
    local label=$1 protocol=$2 r=$3 n=$4 received p999; shift 4
    start_server "$label.$r.$n" "$@"
    run_loadgen "$label.$r.$n" "$label" --duration "$((duration / 2 + 1))s" --warmup 1s \
        --clients "$clients" --rate "$r" --protocol "$protocol" --send-window "$ladder_window"
    stop_server
    read -r received ok_p99 p999 ok_lost <<<"$row"
}

# The rate ladder: the same echo rates against our server and the baseline, one run of
# each in turn at every rate and rep, so both meet the same machine. A single short run
# near saturation is too noisy to bisect on; the highest rate whose median p99 (and every
# lower rate's) stays under 1 ms and under 10 ms with no loss goes to search.csv.
if want search; then
    if [ -z "$ladder" ]; then
        ladder="50 75 100 125 150"
        [ "$quick" -eq 1 ] && ladder="50 100"
    fi
    echo "==> search: echo rates $ladder per client x $clients clients, server and tokio in turn (loadgen --send-window $ladder_window)"
    echo "server,rate_per_client,rep,p99_us,lost" >"$out/ladder.csv"
    for rep in $(seq "$reps"); do
        for r in $ladder; do
            run_once "server-search" binary "$r" "$rep" "$server_bin" --bind 127.0.0.1:0 \
                --workers 2 --rate-limit 0 -q
            echo "server,$r,$rep,$ok_p99,$ok_lost" >>"$out/ladder.csv"
            s_p99=$ok_p99
            run_once "tokio-search" line "$r" "$rep" "$tokio_bin" --bind 127.0.0.1:0
            echo "tokio,$r,$rep,$ok_p99,$ok_lost" >>"$out/ladder.csv"
            echo "    rep $rep, $r/s per client: p99 server $s_p99 us, tokio $ok_p99 us"
        done
    done
    bench_py search "$out/ladder.csv" "$out/search.csv" "$clients"
fi

if want fanout; then
    echo "==> fan-out: $clients clients in one room"
    # 50 messages/s in total: every member sends one every 20 s on average.
    rate_50k=$(bench_py div 50 "$clients")
    # 1000 messages/s in total, each delivered to every member.
    rate_1m=$(bench_py div 1000000 "$clients" "$clients")
    run_point "fanout-50k" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q -- \
        --clients "$clients" --rate "$rate_50k" --scenario room --room-size "$clients"
    run_point "fanout-1m" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q --rate-limit 0 -- \
        --clients "$clients" --rate "$rate_1m" --scenario room --room-size "$clients"
    # One server worker and one load thread: a core each instead of four busy threads
    # on two cores.
    run_point "fanout-50k-w1t1" "$server_bin" --bind 127.0.0.1:0 --workers 1 -q -- \
        --clients "$clients" --rate "$rate_50k" --scenario room --room-size "$clients" \
        --threads 1
    run_point "fanout-1m-w1t1" "$server_bin" --bind 127.0.0.1:0 --workers 1 -q --rate-limit 0 -- \
        --clients "$clients" --rate "$rate_1m" --scenario room --room-size "$clients" \
        --threads 1
fi

# Fan-out to one room of $clients members, 50 and 1000 messages/s in total, against our
# server, Redis pub/sub and NATS (each started here on a free port of 127.0.0.1, nothing
# persisted), in turn at every rep: labels brokers-TARGET-50k and brokers-TARGET-1m.
# Every member subscribes and publishes on one connection in each (loadgen --protocol
# binary, redis, nats).
if want brokers; then
    echo "==> brokers: $clients clients in one room against the server, Redis and NATS"
    redis_bin=$(find_broker redis-server)
    nats_bin=$(find_broker nats-server)
    all_reps=$reps
    reps=1
    rate_50k=$(bench_py div 50 "$clients")
    rate_1m=$(bench_py div 1000000 "$clients" "$clients")
    for rep in $(seq "$all_reps"); do
        round=$rep
        for load in 50k 1m; do
            r=$rate_50k
            [ "$load" = 1m ] && r=$rate_1m
            args=(--clients "$clients" --rate "$r" --scenario room --room-size "$clients")
            starter=""
            run_point "brokers-server-$load" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q \
                --rate-limit 0 -- "${args[@]}" --protocol binary
            starter=start_broker
            for broker in redis nats; do
                run_point "brokers-$broker-$load" "$broker" -- "${args[@]}" --protocol "$broker"
            done
            starter=""
        done
    done
    reps=$all_reps
    round=""
fi

# start_cluster RUN: redis-server on a free port of 127.0.0.1 (nothing persisted) and
# two server nodes joined through it (--workers 1 each, so the two nodes together have
# the single node's two workers); sets addr to both nodes' addresses, server_pid to
# node a's, node_b_pid and redis_pid.
start_cluster() {
    local run=$1 port url a
    port=$(bench_py free-port)
    "$redis_bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        >"$out/logs/$run.redis.log" 2>&1 &
    redis_pid=$!
    bench_py wait-port "127.0.0.1:$port" 10 || die "redis-server did not start (see $out/logs/$run.redis.log)"
    url=redis://127.0.0.1:$port
    start_server "$run.b" "$server_bin" --bind 127.0.0.1:0 --workers 1 -q --rate-limit 0 \
        --redis "$url" --node-name b
    node_b_pid=$server_pid
    a=$addr
    start_server "$run.a" "$server_bin" --bind 127.0.0.1:0 --workers 1 -q --rate-limit 0 \
        --redis "$url" --node-name a
    addr=$addr,$a
}

stop_cluster() {
    stop_server
    kill -INT "$node_b_pid" 2>/dev/null || true
    wait "$node_b_pid" 2>/dev/null || true
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    node_b_pid=""
    redis_pid=""
}

# A cluster of two nodes through Redis against the single node, in turn at every rep:
# one room of $clients members split over the two nodes (loadgen --addr A,B puts client i
# on node i mod 2) at 50 and 1000 messages/s in total, and echo. Labels
# cluster-single-LOAD and cluster-two-LOAD; the CPU of each node and of Redis per
# delivery goes to server_cpu.csv as cluster-two-LOAD~a, ~b and ~redis.
if want cluster; then
    echo "==> cluster: two nodes through Redis against one node, fan-out and echo"
    redis_bin=$(find_broker redis-server)
    all_reps=$reps
    reps=1
    rate_50k=$(bench_py div 50 "$clients")
    rate_1m=$(bench_py div 1000000 "$clients" "$clients")
    for rep in $(seq "$all_reps"); do
        round=$rep
        for load in 50k 1m echo; do
            case $load in
                50k) args=(--clients "$clients" --rate "$rate_50k" --scenario room --room-size "$clients") ;;
                1m) args=(--clients "$clients" --rate "$rate_1m" --scenario room --room-size "$clients") ;;
                echo) args=(--clients "$clients" --rate "$rate" --scenario echo --protocol binary) ;;
            esac
            run_point "cluster-single-$load" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q \
                --rate-limit 0 -- "${args[@]}"
            label=cluster-two-$load
            start_cluster "$label.$rep"
            ta0=$(cpu_ticks "$server_pid"); tb0=$(cpu_ticks "$node_b_pid"); tr0=$(cpu_ticks "$redis_pid")
            run_loadgen "$label.$rep" "$label" --duration "${duration}s" --warmup "${warmup}s" "${args[@]}"
            ta1=$(cpu_ticks "$server_pid"); tb1=$(cpu_ticks "$node_b_pid"); tr1=$(cpu_ticks "$redis_pid")
            stop_cluster
            read -r received p99 p999 lost <<<"$row"
            for part in a b redis; do
                case $part in
                    a) t0=$ta0 t1=$ta1 ;;
                    b) t0=$tb0 t1=$tb1 ;;
                    redis) t0=$tr0 t1=$tr1 ;;
                esac
                bench_py server-cpu "$out/server_cpu.csv" "$label~$part" "$rep" "$t0" "$t1" "$hz" \
                    "$received" "$warmup" "$duration" >/dev/null
            done
            cpu=$(bench_py server-cpu "$out/server_cpu.csv" "$label" "$rep" \
                "$((ta0 + tb0))" "$((ta1 + tb1))" "$hz" "$received" "$warmup" "$duration")
            printf '    %-22s rep %s: p99 %s us, p99.9 %s us, lost %s, nodes cpu %s us/msg\n' \
                "$label" "$rep" "$p99" "$p999" "$lost" "$cpu"
        done
    done
    reps=$all_reps
    round=""
fi

# The metrics endpoint's cost: echo and fan-out with --metrics on and scraped once a
# second, and off, in turn at every rep (labels metrics-on-* and metrics-off-*).
if want metrics; then
    echo "==> metrics: echo and fan-out with --metrics scraped once a second, and without"
    all_reps=$reps
    reps=1
    fanout_rate=$(bench_py div 50 "$clients")
    for rep in $(seq "$all_reps"); do
        round=$rep
        for mode in on off; do
            flags=()
            [ "$mode" = on ] && flags=(--metrics 127.0.0.1:0)
            for point in echo fanout; do
                args=(--clients "$clients" --rate "$rate" --scenario echo --protocol binary)
                [ "$point" = fanout ] &&
                    args=(--clients "$clients" --rate "$fanout_rate" --scenario room --room-size "$clients")
                if [ "$mode" = on ]; then
                    # The scraper finds the endpoint in the log of the server about to start.
                    bench_py scrape "$out/logs/metrics-on-$point.$rep.server.log" \
                        "$((warmup + duration + 5))" >>"$out/metrics-on-$point.scrapes" &
                    scraper_pid=$!
                fi
                run_point "metrics-$mode-$point" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q \
                    "${flags[@]}" -- "${args[@]}"
                if [ -n "$scraper_pid" ]; then
                    kill "$scraper_pid" 2>/dev/null || true
                    wait "$scraper_pid" 2>/dev/null || true
                    scraper_pid=""
                fi
            done
        done
    done
    reps=$all_reps
    round=""
fi

# Room history: echo and fan-out with history kept (the default) and off, in turn at
# every rep (labels history-on-* and history-off-*); a fan-out run with 1 % of the
# members dropping and resuming every second (churn-fanout, 60 s unless --quick).
if want history; then
    echo "==> history: echo and fan-out with history kept and off; churn"
    all_reps=$reps
    reps=1
    fanout_rate=$(bench_py div 50 "$clients")
    for rep in $(seq "$all_reps"); do
        round=$rep
        for mode in on off; do
            flags=()
            [ "$mode" = off ] && flags=(--history-messages 0)
            for point in echo fanout; do
                args=(--clients "$clients" --rate "$rate" --scenario echo --protocol binary)
                [ "$point" = fanout ] &&
                    args=(--clients "$clients" --rate "$fanout_rate" --scenario room --room-size "$clients")
                run_point "history-$mode-$point" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q \
                    "${flags[@]}" -- "${args[@]}"
            done
        done
    done
    reps=$all_reps
    round=""
    churn_duration=60
    [ "$quick" -eq 1 ] && churn_duration=$duration
    saved_duration=$duration
    duration=$churn_duration
    run_point "churn-fanout" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q -- \
        --clients "$clients" --rate "$fanout_rate" --scenario room --room-size "$clients" \
        --churn 1
    duration=$saved_duration
fi

# TLS against plaintext: echo and fan-out with the server on a self-signed certificate
# (loadgen --tls --tls-insecure) and without, in turn at every rep (labels tls-on-*
# and tls-off-*).
if want tls; then
    echo "==> tls: echo and fan-out over TLS, and in plaintext"
    mkdir -p "$out/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 -nodes \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE \
        -keyout "$out/tls/key.pem" -out "$out/tls/cert.pem" 2>/dev/null
    all_reps=$reps
    reps=1
    fanout_rate=$(bench_py div 50 "$clients")
    for rep in $(seq "$all_reps"); do
        round=$rep
        for mode in on off; do
            server_tls=()
            loadgen_tls=()
            if [ "$mode" = on ]; then
                server_tls=(--tls-cert "$out/tls/cert.pem" --tls-key "$out/tls/key.pem")
                loadgen_tls=(--tls --tls-insecure)
            fi
            run_point "tls-$mode-echo" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q \
                "${server_tls[@]}" -- --clients "$clients" --rate "$rate" --scenario echo \
                --protocol binary "${loadgen_tls[@]}"
            run_point "tls-$mode-fanout" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q \
                "${server_tls[@]}" -- --clients "$clients" --rate "$fanout_rate" \
                --scenario room --room-size "$clients" "${loadgen_tls[@]}"
        done
    done
    reps=$all_reps
    round=""
fi

# The memory of many rooms filled past their history limit: rooms of one member, each
# sent more than its 64 KiB of history holds (75 messages of 1000 bytes), far more in
# all than the budget; the same with history off, for the RSS the rest costs.
if want history-memory; then
    history_rooms=10000
    [ "$quick" -eq 1 ] && history_rooms=1000
    budget_mib=64
    echo "==> history memory: $history_rooms rooms filled past their limit, history on and off"
    for mode in on off; do
        flags=(--history-room-bytes 64KiB --history-budget "${budget_mib}MiB")
        [ "$mode" = off ] && flags=(--history-messages 0)
        start_server "history-memory-$mode" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q \
            --max-connections 20000 "${flags[@]}"
        rss0=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
        run_loadgen "history-memory-$mode" "history-memory-$mode" --clients "$history_rooms" \
            --room-size 1 --scenario room --rate 5 --duration 15s --warmup 0s --payload 1000 \
            --connect-rate 5000
        rss1=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
        held=$(bench_py stat "$addr" history_bytes)
        stop_server
        bench_py history-csv "$out/history.csv" "$mode" "$history_rooms" \
            "$((budget_mib << 20))" "$rss0" "$rss1" "$held"
    done
fi

if [ -n "$previous" ]; then
    [ -x "$previous" ] || { echo "bench.sh: --previous $previous is not an executable" >&2; exit 2; }
    echo "==> previous build ($previous) and this one in turn: echo and fan-out"
    all_reps=$reps
    reps=1
    fanout_rate=$(bench_py div 50 "$clients")
    for rep in $(seq "$all_reps"); do
        round=$rep
        for build in this previous; do
            bin=$server_bin
            [ "$build" = previous ] && bin=$previous
            for w in 1 2; do
                run_point "$build-echo-w$w" "$bin" --bind 127.0.0.1:0 --workers "$w" -q -- \
                    --clients "$clients" --rate "$rate" --scenario echo --protocol binary
            done
            run_point "$build-fanout-50k" "$bin" --bind 127.0.0.1:0 --workers 2 -q -- \
                --clients "$clients" --rate "$fanout_rate" --scenario room --room-size "$clients"
        done
    done
    reps=$all_reps
    round=""
fi

if want idle; then
    idle_conns=10000
    [ "$quick" -eq 1 ] && idle_conns=1000
    echo "==> idle: $idle_conns idle connections"
    start_server idle "$server_bin" --bind 127.0.0.1:0 --workers 2 -q --max-connections 20000
    rss0=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
    bench_py idle-clients "$addr" "$idle_conns" "$out/idle.ready" &
    idle_pid=$!
    for _ in $(seq 600); do [ -f "$out/idle.ready" ] && break; sleep 0.1; done
    [ -f "$out/idle.ready" ] || die "the $idle_conns idle connections were not opened in 60 s"
    sleep 2
    rss1=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
    t0=$(cpu_ticks "$server_pid")
    sleep 10
    t1=$(cpu_ticks "$server_pid")
    kill "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
    idle_pid=""
    stop_server
    bench_py idle-csv "$out/idle.csv" "$idle_conns" "$rss0" "$rss1" "$t0" "$t1" "$hz"
fi

echo "==> report"
# The points' summary CSVs (the ladder's runs are summed up in search.csv instead).
mapfile -t summaries < <(find "$out" -maxdepth 1 -name '*.csv' ! -name '*.series.csv' \
    ! -name '*-search.csv' ! -name server_cpu.csv ! -name ladder.csv ! -name search.csv \
    ! -name idle.csv ! -name history.csv | sort)
if [ "${#summaries[@]}" -gt 0 ]; then
    "$loadgen_bin" compare "${summaries[@]}" >"$out/compare.txt"
    "$loadgen_bin" report "${summaries[@]}" -o "$out/report.html" >/dev/null
fi
hgrms() { find "$out" -maxdepth 1 -name "$1-2*.hgrm" ! -name '*.uncorrected.hgrm' | sort; }
if want echo; then
    mapfile -t files < <(hgrms 'echo-w*'; hgrms 'tokio-line')
    if [ "${#files[@]}" -gt 0 ]; then
        "$loadgen_bin" plot -o "$out/echo.svg" "${files[@]}" >/dev/null
    fi
fi
if want fanout; then
    mapfile -t files < <(hgrms 'fanout-*')
    if [ "${#files[@]}" -gt 0 ]; then
        "$loadgen_bin" plot -o "$out/fanout.svg" "${files[@]}" >/dev/null
    fi
fi
if want brokers; then
    mapfile -t files < <(hgrms 'brokers-*')
    if [ "${#files[@]}" -gt 0 ]; then
        "$loadgen_bin" plot -o "$out/brokers.svg" "${files[@]}" >/dev/null
    fi
fi
bench_py summary "$out" | tee "$out/summary.md"
echo "results in $out: summary.md, report.html"
