#!/usr/bin/env bash
# Benchmarks of the chat server against a tokio echo baseline, on 127.0.0.1 only.
#
# Usage: bash scripts/bench.sh [--quick] [--reps N] [--duration SECS] [--out DIR]
#        [--only echo,coalesce,baseline,search,fanout,metrics,tls,idle] [--previous SERVER_BIN]
#
# Starts every server it measures itself (release builds), runs loadgen against it,
# stops it, and writes under --out (default results/bench-<UTC time>/):
#   *.csv, *.hgrm, *.hlog, *.series.csv   loadgen's own results, one summary CSV per point
#   server_cpu.csv                        server CPU time per message, per run
#   ladder.csv, search.csv                p99 at each ladder rate; highest rate per bound
#   idle.csv                              RSS per idle connection, idle CPU
#   summary.md                            medians of every point and the ratios
#   compare.txt                           `loadgen compare` of every run
#   echo.svg, fanout.svg                  `loadgen plot` percentile spectra
# Every point is repeated --reps times (default 3) and medians are reported: this
# machine's 2 cores are shared by the server and the load generator.
# --previous SERVER_BIN adds an A/B of another build of the server (say, the last
# release) against this one: echo with 1 and 2 workers and fan-out to a room, the two
# builds in turn at every rep (labels this-* and previous-*), compared in summary.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

reps=3
duration=10
warmup=3
quick=0
only="echo,coalesce,baseline,search,fanout,metrics,tls,idle"
out=""
previous=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; reps=1; duration=3; warmup=1 ;;
        --reps) reps=$2; shift ;;
        --duration) duration=$2; shift ;;
        --out) out=$2; shift ;;
        --only) only=$2; shift ;;
        --previous) previous=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${out:-results/bench-$stamp}
mkdir -p "$out"
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

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
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    [ -n "${scraper_pid:-}" ] && kill -9 "$scraper_pid" 2>/dev/null || true
    [ -n "$idle_pid" ] && kill -9 "$idle_pid" 2>/dev/null || true
}
trap cleanup EXIT

# start_server CMD...: starts a server that prints "listening on ADDR"; sets
# server_pid and addr.
start_server() {
    local log=$out/server.log
    : >"$log"
    "$@" >"$log" 2>/dev/null &
    server_pid=$!
    for _ in $(seq 200); do
        addr=$(sed -n 's/^listening on //p' "$log" | head -n 1)
        [ -n "$addr" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench.sh: server did not start: $*" >&2
    exit 1
}

stop_server() {
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# CPU ticks (utime + stime) of a process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# Column of the last row of a summary CSV.
last_col() {
    python3 - "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(rows[-1][sys.argv[2]] if rows else "")
EOF
}

# run_point LABEL SERVER_CMD... -- LOADGEN_ARGS...: one measured run per rep, each
# against a fresh server; server CPU per received message goes to server_cpu.csv.
run_point() {
    local label=$1; shift
    local server_cmd=()
    while [ "$1" != "--" ]; do server_cmd+=("$1"); shift; done
    shift
    for rep in $(seq "$reps"); do
        start_server "${server_cmd[@]}"
        local t0 t1 status=0
        t0=$(cpu_ticks "$server_pid")
        "$loadgen_bin" --addr "$addr" --duration "${duration}s" --warmup "${warmup}s" \
            --out "$out" --label "$label" "$@" >"$out/$label.$rep.log" 2>&1 || status=$?
        t1=$(cpu_ticks "$server_pid")
        stop_server
        if [ "$status" -ne 0 ]; then
            echo "    $label rep $rep: loadgen exited $status (see $out/$label.$rep.log)"
        fi
        local received
        received=$(last_col "$out/$label.csv" received)
        python3 - "$out/server_cpu.csv" "$label" "$rep" "$t0" "$t1" "$hz" "$received" \
            "$warmup" "$duration" <<'EOF'
import os, sys
path, label, rep, t0, t1, hz, received, warmup, duration = sys.argv[1:]
# The server also works during warmup, so count those messages too.
received = float(received or 0)
total = received * (float(warmup) + float(duration)) / float(duration)
cpu_us = (int(t1) - int(t0)) / int(hz) * 1e6
per_msg = cpu_us / total if total else float("nan")
new = not os.path.exists(path)
with open(path, "a") as f:
    if new:
        f.write("label,rep,server_cpu_s,messages,server_cpu_us_per_msg\n")
    f.write(f"{label},{rep},{cpu_us/1e6:.3f},{int(total)},{per_msg:.3f}\n")
EOF
        printf '    %-22s rep %s: p99 %s us, p99.9 %s us, lost %s, server cpu %s us/msg\n' \
            "$label" "$rep" "$(last_col "$out/$label.csv" p99_us)" \
            "$(last_col "$out/$label.csv" p999_us)" "$(last_col "$out/$label.csv" lost)" \
            "$(tail -n 1 "$out/server_cpu.csv" | cut -d, -f5)"
    done
}

clients=1000
rate=50
if [ "$quick" -eq 1 ]; then clients=200; fi

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

run_once() {
    local label=$1 protocol=$2 r=$3; shift 3
    start_server "$@"
    "$loadgen_bin" --addr "$addr" --duration "$((duration / 2 + 1))s" --warmup 1s \
        --clients "$clients" --rate "$r" --protocol "$protocol" \
        --out "$out" --label "$label" >"$out/$label.log" 2>&1 || true
    stop_server
    ok_p99=$(last_col "$out/$label.csv" p99_us)
    ok_lost=$(last_col "$out/$label.csv" lost)
    ok_p99=${ok_p99:-999999999}
    ok_lost=${ok_lost:-1}
}

# The rate ladder: the same echo rates against our server and the baseline, one run of
# each in turn at every rate and rep, so both meet the same machine. A single short run
# near saturation is too noisy to bisect on; the highest rate whose median p99 (and every
# lower rate's) stays under 1 ms and under 10 ms with no loss goes to search.csv.
if want search; then
    ladder="50 75 100 125 150"
    [ "$quick" -eq 1 ] && ladder="50 100"
    echo "==> search: echo rates $ladder per client x $clients clients, server and tokio in turn"
    echo "server,rate_per_client,rep,p99_us,lost" >"$out/ladder.csv"
    for rep in $(seq "$reps"); do
        for r in $ladder; do
            run_once "server-search" binary "$r" "$server_bin" --bind 127.0.0.1:0 --workers 2 \
                --rate-limit 0 -q
            echo "server,$r,$rep,$ok_p99,$ok_lost" >>"$out/ladder.csv"
            s_p99=$ok_p99
            run_once "tokio-search" line "$r" "$tokio_bin" --bind 127.0.0.1:0
            echo "tokio,$r,$rep,$ok_p99,$ok_lost" >>"$out/ladder.csv"
            echo "    rep $rep, $r/s per client: p99 server $s_p99 us, tokio $ok_p99 us"
        done
    done
    python3 - "$out/ladder.csv" "$out/search.csv" "$clients" <<'EOF'
import csv, statistics, sys
ladder, search, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = {}
for r in csv.DictReader(open(ladder)):
    runs.setdefault((r["server"], int(r["rate_per_client"])), []).append(r)
with open(search, "w") as f:
    f.write("server,p99_bound_us,clients,rate_per_client,total_rate\n")
    for server in ("server", "tokio"):
        rates = sorted(rate for (name, rate) in runs if name == server)
        for bound in (1000, 10000):
            best = 0
            for rate in rates:
                rr = runs[(server, rate)]
                p99 = statistics.median(int(r["p99_us"]) for r in rr)
                if p99 > bound or any(int(r["lost"]) for r in rr):
                    break
                best = rate
            f.write(f"{server},{bound},{clients},{best},{best * clients}\n")
            print(f"    {server}: median p99 <= {bound} us up to {best}/s per client")
EOF
fi

if want fanout; then
    echo "==> fan-out: $clients clients in one room"
    # 50 messages/s in total: every member sends one every 20 s on average.
    run_point "fanout-50k" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q -- \
        --clients "$clients" --rate "$(python3 -c "print(50/$clients)")" \
        --scenario room --room-size "$clients"
    run_point "fanout-1m" "$server_bin" --bind 127.0.0.1:0 --workers 2 -q --rate-limit 0 -- \
        --clients "$clients" --rate "$(python3 -c "print(1000000/$clients/$clients)")" \
        --scenario room --room-size "$clients"
    # One server worker and one load thread: a core each instead of four busy threads
    # on two cores.
    run_point "fanout-50k-w1t1" "$server_bin" --bind 127.0.0.1:0 --workers 1 -q -- \
        --clients "$clients" --rate "$(python3 -c "print(50/$clients)")" \
        --scenario room --room-size "$clients" --threads 1
    run_point "fanout-1m-w1t1" "$server_bin" --bind 127.0.0.1:0 --workers 1 -q --rate-limit 0 -- \
        --clients "$clients" --rate "$(python3 -c "print(1000000/$clients/$clients)")" \
        --scenario room --room-size "$clients" --threads 1
fi

# The metrics endpoint's cost: echo and fan-out with --metrics on and scraped once a
# second, and off, in turn at every rep (labels metrics-on-* and metrics-off-*).
scraper_pid=""
if want metrics; then
    echo "==> metrics: echo and fan-out with --metrics scraped once a second, and without"
    all_reps=$reps
    reps=1
    fanout_rate=$(python3 -c "print(50/$clients)")
    for rep in $(seq "$all_reps"); do
        for mode in on off; do
            flags=()
            [ "$mode" = on ] && flags=(--metrics 127.0.0.1:0)
            for point in echo fanout; do
                args=(--clients "$clients" --rate "$rate" --scenario echo --protocol binary)
                [ "$point" = fanout ] &&
                    args=(--clients "$clients" --rate "$fanout_rate" --scenario room --room-size "$clients")
                if [ "$mode" = on ]; then
                    # The scraper finds the endpoint in the log of the server about to start.
                    : >"$out/server.log"
                    python3 - "$out/server.log" "$((warmup + duration + 5))" \
                        >>"$out/metrics-on-$point.scrapes" <<'EOF' &
import re, sys, time, urllib.request
log, seconds = sys.argv[1], float(sys.argv[2])
end = time.time() + seconds
addr = None
while addr is None and time.time() < end:
    time.sleep(0.05)
    found = re.search(r"^metrics on (\S+)$", open(log).read(), re.M)
    addr = found.group(1) if found else None
while addr and time.time() < end:
    try:
        urllib.request.urlopen(f"http://{addr}/metrics", timeout=2).read()
        print("scraped", flush=True)
    except OSError:
        pass
    time.sleep(1)
EOF
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
    fanout_rate=$(python3 -c "print(50/$clients)")
    for rep in $(seq "$all_reps"); do
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
fi

if [ -n "$previous" ]; then
    [ -x "$previous" ] || { echo "bench.sh: --previous $previous is not an executable" >&2; exit 2; }
    echo "==> previous build ($previous) and this one in turn: echo and fan-out"
    all_reps=$reps
    reps=1
    fanout_rate=$(python3 -c "print(50/$clients)")
    for rep in $(seq "$all_reps"); do
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
fi

if want idle; then
    idle_conns=10000
    [ "$quick" -eq 1 ] && idle_conns=1000
    echo "==> idle: $idle_conns idle connections"
    start_server "$server_bin" --bind 127.0.0.1:0 --workers 2 -q --max-connections 20000
    rss0=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
    python3 - "$addr" "$idle_conns" "$out/idle.ready" <<'EOF' &
import socket, struct, sys, time
host, port = sys.argv[1].rsplit(":", 1)
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection((host, int(port)))
    s.sendall(struct.pack(">IBH", 3, 0x01, 1))  # Hello, protocol version 1
    socks.append(s)
open(sys.argv[3], "w").close()
time.sleep(60)
EOF
    idle_pid=$!
    for _ in $(seq 600); do [ -f "$out/idle.ready" ] && break; sleep 0.1; done
    sleep 2
    rss1=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
    t0=$(cpu_ticks "$server_pid")
    sleep 10
    t1=$(cpu_ticks "$server_pid")
    kill "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
    idle_pid=""
    stop_server
    python3 - "$out/idle.csv" "$idle_conns" "$rss0" "$rss1" "$t0" "$t1" "$hz" <<'EOF'
import sys
path, n, rss0, rss1, t0, t1, hz = sys.argv[1:]
n = int(n)
per_conn = (int(rss1) - int(rss0)) * 1024 / n
cpu_pct = (int(t1) - int(t0)) / int(hz) / 10 * 100
with open(path, "w") as f:
    f.write("connections,rss_before_kib,rss_after_kib,rss_per_conn_bytes,idle_cpu_percent\n")
    f.write(f"{n},{rss0},{rss1},{per_conn:.0f},{cpu_pct:.2f}\n")
print(f"    {n} idle connections: {per_conn:.0f} bytes RSS each, {cpu_pct:.2f} % CPU over 10 s")
EOF
fi

echo "==> report"
"$loadgen_bin" compare "$out"/*.csv >"$out/compare.txt" 2>/dev/null || true
hgrms() { find "$out" -name "$1-2*.hgrm" ! -name '*.uncorrected.hgrm' | sort; }
if want echo; then
    mapfile -t files < <(hgrms 'echo-w*'; hgrms 'tokio-line')
    [ "${#files[@]}" -gt 0 ] && "$loadgen_bin" plot -o "$out/echo.svg" \
        --title "Echo, $clients clients x $rate/s: corrected latency" "${files[@]}" >/dev/null 2>&1 || true
fi
if want fanout; then
    mapfile -t files < <(hgrms 'fanout-*')
    [ "${#files[@]}" -gt 0 ] && "$loadgen_bin" plot -o "$out/fanout.svg" \
        --title "Room of $clients: latency at every receiver" "${files[@]}" >/dev/null 2>&1 || true
fi
python3 "$root/scripts/bench_summary.py" "$out" | tee "$out/summary.md"
echo "results in $out"
