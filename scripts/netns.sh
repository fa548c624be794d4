#!/usr/bin/env bash
# Real network paths on one machine: network namespaces joined by veth pairs, a lossy
# path and a slow one, the release server in one namespace and two loadgen processes in
# two others, started together with --start-at and merged with `loadgen merge`.
#
#   bash scripts/netns.sh            longer runs (about 1.5 minutes on 2 cores)
#   bash scripts/netns.sh --quick    short runs for CI (under a minute once built)
#
# Needs root, iproute2 (ip, tc, nstat) and nftables (nft). Builds the release binaries
# it runs. Topology (every address lives inside namespaces this script creates and
# deletes; nothing else is ever a target):
#
#   NS_A  eth0 10.77.0.2 --veth-- pa ┐
#                                    ├ br0 10.77.0.1 (NS_SRV: server on 10.77.0.1:7878)
#   NS_B  eth0 10.77.0.3 --veth-- pb ┘
#
# NS_A drops 2 % of the packets it sends (nftables, output hook) and 2 % of those it
# receives (input hook); pb, the server side of NS_B's link, sends at most 1 mbit/s (tbf). The kernel has no netem, so delay and
# loss come only from these two. Checks (exit 1 if any fails):
#   1. loopback: the same echo load from inside NS_SRV, for the reference latency;
#   2. both loadgens (echo) with one --start-at, merged: counts add up, nothing lost
#      at the application level despite the packet loss, and the lossy side's
#      corrected max latency well above the loopback figure (retransmission stalls);
#      meanwhile a silent connection behind the slow link gets the server's keepalive
#      PING at half --idle-timeout and ERR 302 at --idle-timeout, while the loadgens,
#      silent until --start-at, answer the PING and stay;
#   3. a heavy room whose members are all behind the slow link: each is closed with
#      error 301 (slow-consumer) once its queue passes --max-pending, while an echo load
#      from NS_A at the same time is unaffected (nothing lost, no errors).
# Namespaces and nft tables are removed on exit, also on failure or Ctrl+C.
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0
case "${1:-}" in
    --quick) QUICK=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,32p' "$0"
        exit 0
        ;;
    *)
        echo "usage: $0 [--quick]" >&2
        exit 2
        ;;
esac
pick() { if ((QUICK)); then echo "$2"; else echo "$1"; fi; }

say() { printf '%s\n' "$*"; }
section() { printf '\n=== %s\n' "$*"; }

if [[ "$(id -u)" != 0 ]]; then
    echo "netns.sh: needs root (network namespaces, tc, nft)" >&2
    exit 1
fi
for tool in ip tc nft nstat python3; do
    command -v "$tool" >/dev/null || {
        echo "netns.sh: $tool is missing (apt-get install iproute2 nftables python3)" >&2
        exit 1
    }
done

TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
say "building release binaries (server, loadgen, hostile)"
cargo build --release --locked -q -p server -p loadgen -p soak || {
    echo "netns.sh: build failed" >&2
    exit 1
}

SUITE_START=$(date +%s)

# Names carry the PID so two runs (or two engineers) never share a namespace.
TAG="lgn$$"
NS_SRV="$TAG-srv"
NS_A="$TAG-a"
NS_B="$TAG-b"
SRV_IP=10.77.0.1
A_IP=10.77.0.2
B_IP=10.77.0.3
PORT=7878
ADDR="$SRV_IP:$PORT"
IDLE_S=6
WORK="$(mktemp -d "${TMPDIR:-/tmp}/netns.XXXXXX")"
RESULTS="$WORK/results"
PIDS=()
FAILED=0
SUMMARY=()

cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    # Whatever still runs inside the namespaces was started by this script (they are
    # its own): end it by PID, or it would keep a deleted namespace alive.
    for ns in "$NS_A" "$NS_B" "$NS_SRV"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    ip netns exec "$NS_A" nft delete table inet lgloss 2>/dev/null || true
    for ns in "$NS_A" "$NS_B" "$NS_SRV"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    if [[ -n "${NETNS_KEEP:-}" ]]; then
        echo "netns: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'echo "netns: interrupted" >&2; exit 130' INT TERM

# record CASE VERDICT TEXT
record() {
    say "$2 $1: $3"
    SUMMARY+=("$(printf '%-4s %-14s %s' "$2" "$1" "$3")")
    [[ "$2" == FAIL ]] && FAILED=1
    return 0
}

# nsx NS CMD...: runs CMD inside namespace NS.
nsx() {
    local ns="$1"
    shift
    ip netns exec "$ns" "$@"
}

# col CSV COLUMN: the column's value in the last row of a summary CSV.
col() {
    python3 - "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(rows[-1][sys.argv[2]] if rows else "")
EOF
}

# stat NAME: one server counter.
stat() {
    nsx "$NS_SRV" "$BIN/hostile" stats --addr "$ADDR" --timeout 5s 2>/dev/null |
        sed -n "s/^$1=//p"
}

# ms US: microseconds as milliseconds with 3 decimals.
ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }

# ---- the network -----------------------------------------------------------------------

section "network: $NS_SRV (bridge $SRV_IP), $NS_A ($A_IP, 2% loss each way), $NS_B ($B_IP, 1 mbit in)"
setup() {
    ip netns add "$NS_SRV" && ip netns add "$NS_A" && ip netns add "$NS_B" || return 1
    local ns
    for ns in "$NS_SRV" "$NS_A" "$NS_B"; do
        nsx "$ns" ip link set lo up || return 1
    done
    nsx "$NS_SRV" ip link add br0 type bridge || return 1
    nsx "$NS_SRV" ip addr add "$SRV_IP/24" dev br0 || return 1
    nsx "$NS_SRV" ip link set br0 up || return 1
    # Each pair is created inside the server's namespace, its far end moved straight
    # into the client's: no interface ever appears in the host's namespace.
    local side peer ip
    for side in a b; do
        if [[ $side == a ]]; then peer="$NS_A" ip="$A_IP"; else peer="$NS_B" ip="$B_IP"; fi
        nsx "$NS_SRV" ip link add "p$side" type veth peer name eth0 netns "$peer" || return 1
        nsx "$NS_SRV" ip link set "p$side" master br0 || return 1
        nsx "$NS_SRV" ip link set "p$side" up || return 1
        nsx "$peer" ip addr add "$ip/24" dev eth0 || return 1
        nsx "$peer" ip link set eth0 up || return 1
    done
    # 2 % of the packets NS_A sends are dropped at its output hook, and 2 % of those it
    # receives at its input hook. An output-hook drop is reported to the sending TCP as
    # a local error: the segment stays queued and goes out with the next transmission
    # (a stall of up to one message interval, no retransmission). An input-hook drop
    # is a packet lost on the way: the server's TCP must detect it and retransmit.
    nsx "$NS_A" nft add table inet lgloss || return 1
    nsx "$NS_A" nft add chain inet lgloss out '{ type filter hook output priority 0; policy accept; }' || return 1
    nsx "$NS_A" nft add rule inet lgloss out numgen random mod 100 '<' 2 drop || return 1
    nsx "$NS_A" nft add chain inet lgloss in '{ type filter hook input priority 0; policy accept; }' || return 1
    nsx "$NS_A" nft add rule inet lgloss in numgen random mod 100 '<' 2 drop || return 1
    # What the server sends towards NS_B leaves through pb at 1 mbit/s.
    nsx "$NS_SRV" tc qdisc add dev pb root tbf rate 1mbit burst 32kbit latency 50ms || return 1
}
if ! setup; then
    record network FAIL "could not build the namespaces (root, iproute2, nftables, veth/bridge/tbf support?)"
    exit 1
fi
say "$(nsx "$NS_SRV" tc qdisc show dev pb | head -1)"
for chain in out in; do
    say "$NS_A $chain: $(nsx "$NS_A" nft list chain inet lgloss "$chain" | grep numgen | sed 's/^[[:space:]]*//')"
done

# ---- the server ------------------------------------------------------------------------

ip netns exec "$NS_SRV" "$BIN/server" --bind "$ADDR" --workers 2 -q --idle-timeout "${IDLE_S}s" \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 1 100); do
    grep -q '^listening on ' "$WORK/server.out" && break
    sleep 0.1
done
if ! grep -q '^listening on ' "$WORK/server.out"; then
    record server FAIL "did not start: $(head -3 "$WORK/server.err")"
    exit 1
fi
say "server: $(head -1 "$WORK/server.out") in $NS_SRV, --idle-timeout ${IDLE_S}s, --max-pending 1MiB (default)"

CLIENTS=$(pick 40 40)
RATE=$(pick 10 10)
DURATION=$(pick 20 5)
# The same echo load everywhere: 40 clients x 10/s, 64-byte payloads, about 48 KB/s of
# replies towards NS_B, well under its 1 mbit/s.
LOAD=(--clients "$CLIENTS" --rate "$RATE" --threads 1 --warmup 1s --grace 5s -q --out "$RESULTS")

# ---- 1. loopback reference ---------------------------------------------------------------

section "1. loopback: $CLIENTS clients x ${RATE}/s echo from inside $NS_SRV for ${DURATION}s"
nsx "$NS_SRV" "$BIN/loadgen" --addr "$ADDR" "${LOAD[@]}" --duration "${DURATION}s" \
    --label loopback >"$WORK/loopback.out" 2>&1
LOOP_RC=$?
LOOP_CSV="$RESULTS/loopback.csv"
if [[ $LOOP_RC != 0 || ! -f "$LOOP_CSV" ]]; then
    record loopback FAIL "loadgen exit $LOOP_RC: $(tail -2 "$WORK/loopback.out")"
    exit 1
fi
LOOP_P999=$(col "$LOOP_CSV" p999_us)
LOOP_MAX=$(col "$LOOP_CSV" max_us)
record loopback PASS "sent $(col "$LOOP_CSV" sent), lost $(col "$LOOP_CSV" lost), p50 $(ms "$(col "$LOOP_CSV" p50_us)") p99 $(ms "$(col "$LOOP_CSV" p99_us)") p99.9 $(ms "$LOOP_P999") max $(ms "$LOOP_MAX") ms"

# ---- 2. two loadgens, one start, merged ------------------------------------------------

section "2. $NS_A (lossy) and $NS_B (slow) send together from --start-at, then merge"
# retrans NS: TCP segments retransmitted in NS so far.
retrans() { nsx "$1" nstat -az TcpRetransSegs | awk '/TcpRetransSegs/ { print $2 }'; }
RETRANS_BEFORE=$(($(retrans "$NS_A") + $(retrans "$NS_SRV")))
# A connection behind the slow link that never says a word: the keepalive probe.
# Each line it reads is stamped with the milliseconds since it connected.
ip netns exec "$NS_B" timeout $((IDLE_S + 6)) bash -c "exec 3<>/dev/tcp/$SRV_IP/$PORT || exit 1
    t0=\$(date +%s%N)
    while IFS= read -r line <&3; do
        echo \"\$(((\$(date +%s%N) - t0) / 1000000)) \$line\"
    done
    echo \"\$(((\$(date +%s%N) - t0) / 1000000)) CLOSED\"" >"$WORK/idle.out" 2>&1 &
IDLE_PID=$!
PIDS+=("$IDLE_PID")
# One instant for both, 2-3 s ahead: plenty for 40 connects at --connect-rate 1000.
START_AT=$(date -u -d "@$(($(date +%s) + 3))" +%Y-%m-%dT%H:%M:%SZ)
say "both start at $START_AT"
ip netns exec "$NS_A" "$BIN/loadgen" --addr "$ADDR" "${LOAD[@]}" --duration "${DURATION}s" \
    --start-at "$START_AT" --label lossy >"$WORK/lossy.out" 2>&1 &
A_PID=$!
PIDS+=("$A_PID")
# The second process starts later; its --start-at names the same instant.
sleep 0.5
ip netns exec "$NS_B" "$BIN/loadgen" --addr "$ADDR" "${LOAD[@]}" --duration "${DURATION}s" \
    --start-at "$START_AT" --label slow >"$WORK/slow.out" 2>&1 &
B_PID=$!
PIDS+=("$B_PID")
wait "$A_PID"
A_RC=$?
wait "$B_PID"
B_RC=$?
wait "$IDLE_PID"
RETRANS_AFTER=$(($(retrans "$NS_A") + $(retrans "$NS_SRV")))
A_CSV="$RESULTS/lossy.csv"
B_CSV="$RESULTS/slow.csv"
if [[ $A_RC != 0 || $B_RC != 0 ]]; then
    record two-runs FAIL "loadgen exits $A_RC (lossy), $B_RC (slow): $(tail -2 "$WORK/lossy.out") $(tail -2 "$WORK/slow.out")"
else
    "$BIN/loadgen" merge "$A_CSV" "$B_CSV" -o "$RESULTS/merged" --label merged >"$WORK/merge.out" 2>&1
    MERGE_RC=$?
    M_CSV="$RESULTS/merged/merged.csv"
    if [[ $MERGE_RC != 0 || ! -f "$M_CSV" ]]; then
        record merge FAIL "loadgen merge exit $MERGE_RC: $(cat "$WORK/merge.out")"
    else
        sed 's/^/  /' "$WORK/merge.out"
        for run in lossy slow merged; do
            case $run in lossy) f="$A_CSV" ;; slow) f="$B_CSV" ;; merged) f="$M_CSV" ;; esac
            say "  $run: sent $(col "$f" sent) received $(col "$f" received) lost $(col "$f" lost) errors $(col "$f" errors); ms p50 $(ms "$(col "$f" p50_us)") p99 $(ms "$(col "$f" p99_us)") p99.9 $(ms "$(col "$f" p999_us)") max $(ms "$(col "$f" max_us)")"
        done
        A_SENT=$(col "$A_CSV" sent)
        B_SENT=$(col "$B_CSV" sent)
        M_SENT=$(col "$M_CSV" sent)
        M_LOST=$(col "$M_CSV" lost)
        M_ERR=$(col "$M_CSV" errors)
        M_RECV=$(col "$M_CSV" received)
        if [[ "$M_SENT" == $((A_SENT + B_SENT)) && "$M_RECV" == "$M_SENT" && "$M_LOST" == 0 && "$M_ERR" == 0 && "$A_SENT" -gt 0 && "$B_SENT" -gt 0 ]]; then
            record merge PASS "merged $M_SENT sent = $A_SENT (lossy) + $B_SENT (slow), received $M_RECV, lost 0, errors 0"
        else
            record merge FAIL "merged sent $M_SENT (lossy $A_SENT + slow $B_SENT), received $M_RECV, lost $M_LOST, errors $M_ERR"
        fi
        # Both processes began at one instant: their measured parts share a BaseTime.
        BASE_A=$(grep -m1 '^#\[BaseTime' "$RESULTS"/lossy-*.hlog | awk '{ print $2 }')
        BASE_B=$(grep -m1 '^#\[BaseTime' "$RESULTS"/slow-*.hlog | awk '{ print $2 }')
        if [[ -n "$BASE_A" && "$BASE_A" == "$BASE_B" ]]; then
            record start-at PASS "both measured parts began at $BASE_A (hlog BaseTime, ms precision)"
        else
            record start-at FAIL "measured parts began at $BASE_A (lossy) and $BASE_B (slow)"
        fi
        A_MAX=$(col "$A_CSV" max_us)
        A_P999=$(col "$A_CSV" p999_us)
        RETRANS=$((RETRANS_AFTER - RETRANS_BEFORE))
        # A packet lost on the way costs its connection a retransmission timeout (at
        # least 200 ms in Linux), so the worst latency passes 150 ms; loopback stays
        # around a few ms (tens on a busy machine), so the bound is also twice its max.
        STALL_BOUND=$((LOOP_MAX * 2 > 150000 ? LOOP_MAX * 2 : 150000))
        if [[ "$(col "$A_CSV" lost)" == 0 && "$A_MAX" -ge "$STALL_BOUND" && "$RETRANS" -gt 0 ]]; then
            record packet-loss PASS "lossy side lost 0 messages; $RETRANS TCP segments retransmitted (server and $NS_A); max $(ms "$A_MAX") ms, p99.9 $(ms "$A_P999") ms vs loopback max $(ms "$LOOP_MAX") ms, p99.9 $(ms "$LOOP_P999") ms (bound: max >= $(ms "$STALL_BOUND") ms)"
        else
            record packet-loss FAIL "lossy side lost $(col "$A_CSV" lost); $RETRANS retransmitted; max $(ms "$A_MAX") ms vs bound $(ms "$STALL_BOUND") ms"
        fi
    fi
fi
# Keepalive on the slow link: a PING at half the idle timeout, ERR 302 at the timeout
# (the server looks once a second, so each may come up to a second later).
PING_MS=$(awk '$2 == "PING" { print $1; exit }' "$WORK/idle.out")
ERR_MS=$(awk '$2 == "ERR" && $3 == "302" { print $1; exit }' "$WORK/idle.out")
IDLE_MS=$(awk '$2 == "CLOSED" { print $1; exit }' "$WORK/idle.out")
HALF_MS=$((IDLE_S * 500))
if [[ -n "$PING_MS" && -n "$ERR_MS" ]] &&
    ((PING_MS >= HALF_MS && PING_MS < HALF_MS + 1500 && ERR_MS >= IDLE_S * 1000 && ERR_MS < IDLE_S * 1000 + 1500)); then
    record keepalive PASS "silent client behind 1 mbit: PING at ${PING_MS} ms, '$(grep -m1 ' ERR 302' "$WORK/idle.out" | cut -d' ' -f2-)' at ${ERR_MS} ms, closed at ${IDLE_MS} ms (closed_idle=$(stat closed_idle)); the loadgens, silent until --start-at, kept every connection"
else
    record keepalive FAIL "silent client saw (ms since connect): $(tr '\n' '|' <"$WORK/idle.out") "
fi

# ---- 3. slow consumers behind the 1 mbit link ------------------------------------------

ROOM_CLIENTS=5
ROOM_RATE=$(pick 100 100)
ROOM_PAYLOAD=4000
ROOM_S=$(pick 10 4)
section "3. a room of $ROOM_CLIENTS members in $NS_B (1 mbit) at ${ROOM_RATE}/s each, ${ROOM_PAYLOAD}-byte messages; echo load from $NS_A at once"
SLOW_BEFORE=$(stat closed_slow_consumer)
START_AT=$(date -u -d "@$(($(date +%s) + 3))" +%Y-%m-%dT%H:%M:%SZ)
ip netns exec "$NS_A" "$BIN/loadgen" --addr "$ADDR" "${LOAD[@]}" --duration "$((ROOM_S + 2))s" \
    --start-at "$START_AT" --label bystander >"$WORK/bystander.out" 2>&1 &
A_PID=$!
PIDS+=("$A_PID")
ip netns exec "$NS_B" "$BIN/loadgen" --addr "$ADDR" --scenario room --room-size "$ROOM_CLIENTS" \
    --clients "$ROOM_CLIENTS" --rate "$ROOM_RATE" --payload "$ROOM_PAYLOAD" --threads 1 \
    --warmup 0s --duration "${ROOM_S}s" --grace 2s --start-at "$START_AT" -q --out "$RESULTS" \
    --label heavy-room >"$WORK/heavy.out" 2>&1 &
B_PID=$!
PIDS+=("$B_PID")
wait "$B_PID"
B_RC=$?
wait "$A_PID"
A_RC=$?
SLOW_AFTER=$(stat closed_slow_consumer)
H_CSV="$RESULTS/heavy-room.csv"
Y_CSV="$RESULTS/bystander.csv"
SLOW=$((SLOW_AFTER - SLOW_BEFORE))
# Each member is closed once: loadgen sees the Error 301 (a server error) if it gets
# through the link before the server's 2 s close deadline, a disconnect otherwise (the
# socket buffers in front of the 1 mbit link hold seconds of room traffic).
H_ERRORS=$(col "$H_CSV" errors)
H_301=$(col "$H_CSV" server_errors)
H_DISC=$(col "$H_CSV" disconnects)
if [[ $B_RC == 0 && -f "$H_CSV" && "$SLOW" == "$ROOM_CLIENTS" && "$H_ERRORS" == "$ROOM_CLIENTS" &&
    $((H_301 + H_DISC)) == "$ROOM_CLIENTS" ]]; then
    record slow-consumer PASS "all $ROOM_CLIENTS members behind 1 mbit closed as slow consumers (server closed_slow_consumer +$SLOW); at loadgen $H_301 saw Error 301 and $H_DISC were cut off behind the queued data; they received $(col "$H_CSV" received) of $(col "$H_CSV" expected)"
else
    record slow-consumer FAIL "exit $B_RC, closed_slow_consumer +$SLOW, loadgen errors $H_ERRORS (server errors $H_301, disconnects $H_DISC): $(tail -3 "$WORK/heavy.out" | tr '\n' ' ')"
fi
# The bystander talks through the lossy link: a rare client can lose its connect or
# handshake there (or the rest of its run) for reasons that have nothing to do with the
# slow consumers. Quick mode (CI) names such errors and warns; the full form fails.
Y_BREAKDOWN="connect failures $(col "$Y_CSV" connect_failures 2>/dev/null), disconnects $(col "$Y_CSV" disconnects 2>/dev/null), server errors $(col "$Y_CSV" server_errors 2>/dev/null): $(grep -m1 'first error' "$WORK/bystander.out" 2>/dev/null)"
if [[ $A_RC == 0 && -f "$Y_CSV" && "$(col "$Y_CSV" lost)" == 0 && "$(col "$Y_CSV" errors)" == 0 ]]; then
    record bystander PASS "echo from $NS_A meanwhile: sent $(col "$Y_CSV" sent), lost 0, errors 0, p99 $(ms "$(col "$Y_CSV" p99_us)") ms max $(ms "$(col "$Y_CSV" max_us)") ms"
elif ((QUICK)) && [[ $A_RC == 0 && -f "$Y_CSV" && "$(col "$Y_CSV" lost)" == 0 ]]; then
    record bystander WARN "echo from $NS_A: lost 0 but errors $(col "$Y_CSV" errors) ($Y_BREAKDOWN)"
else
    record bystander FAIL "echo from $NS_A: exit $A_RC, lost $(col "$Y_CSV" lost 2>/dev/null), errors $(col "$Y_CSV" errors 2>/dev/null) ($Y_BREAKDOWN)"
fi

# The server shuts down gracefully (exit 0) after all of that.
kill -INT "$SERVER_PID" 2>/dev/null
for _ in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    record server FAIL "still running 10 s after SIGINT"
else
    wait "$SERVER_PID"
    SERVER_RC=$?
    if [[ $SERVER_RC == 0 ]]; then
        record server PASS "shut down cleanly (exit 0)"
    else
        record server FAIL "exit $SERVER_RC after SIGINT: $(tail -2 "$WORK/server.err")"
    fi
fi

section "summary ($( ((QUICK)) && echo quick || echo full ) mode, $(($(date +%s) - SUITE_START)) s without the build)"
printf '%s\n' "${SUMMARY[@]}"
if ((FAILED)); then
    say "netns: FAILED"
    exit 1
fi
say "netns: all checks passed"
