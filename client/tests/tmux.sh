#!/usr/bin/env bash
# Drives the interactive `chat` under tmux and checks the screen a person would see:
# the `> ` prompt, incoming lines printed above a half-typed line without breaking it,
# escaped hostile text, /echo timings, history, the clean exits (Ctrl+D, Ctrl+C, /quit)
# and the failing ones with --no-reconnect (server shutdown, server killed, connection
# refused), each followed by a check that the terminal is back in cooked mode; and
# reconnecting by itself after the server is killed and restarted on the same port.
#
# Usage: bash client/tests/tmux.sh        (from the workspace root; needs tmux)
# Builds `chat` and `server` with cargo (CARGO_TARGET_DIR is honoured). Everything
# runs on 127.0.0.1 with a server on a free port, and every wait is bounded.
# Set KEEP_SCREENS=DIR to keep a text capture of each scenario's screen.
set -euo pipefail

command -v tmux >/dev/null || { echo "tmux.sh: tmux is not installed" >&2; exit 2; }

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build -q -p client -p server --bins)
chat=$target/debug/chat
server_bin=$target/debug/server

work=$(mktemp -d)
session="chat-tmux-$$"
server_pid=""
passed=0
failed=0

cleanup() {
    tmux kill-session -t "$session" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

start_server() { # start_server [PORT]: a server on PORT (default: a free one), sets $port
    : >"$work/server.log"
    "$server_bin" --bind "127.0.0.1:${1:-0}" --log-interval 0 -q >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/server.log" | cut -d: -f2 || true)
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    echo "tmux.sh: server did not start" >&2
    exit 1
}

screen() { tmux capture-pane -p -t "$session"; }

# wait_for TEXT: polls the screen (there is nothing else to wait on) for up to 10 s.
wait_for() {
    for _ in $(seq 100); do
        screen | grep -qF -- "$1" && return 0
        sleep 0.1
    done
    return 1
}

check() { # check NAME TEXT: the screen shows TEXT
    if wait_for "$2"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $1: screen lacks: $2" >&2
        screen | sed 's/^/    | /' >&2
    fi
}

check_not() { # check_not NAME TEXT: the screen does not show TEXT
    if screen | grep -qF -- "$2"; then
        failed=$((failed + 1))
        echo "FAIL: $1: screen shows: $2" >&2
        screen | sed 's/^/    | /' >&2
    else
        passed=$((passed + 1))
    fi
}

keep() { [ -n "${KEEP_SCREENS:-}" ] && mkdir -p "$KEEP_SCREENS" && screen >"$KEEP_SCREENS/$1.txt" || true; }

# run_chat ARGS...: a fresh pane running chat, then its exit code and the terminal mode.
run_chat() {
    tmux kill-session -t "$session" 2>/dev/null || true
    tmux new-session -d -s "$session" -x 110 -y 30 "bash --norc --noprofile"
    tmux send-keys -t "$session" "clear; TZ=UTC $chat $*; echo EXIT=\$?; stty -a | grep -qw -- -icanon && echo TTY=raw || echo TTY=cooked" Enter
}

piped() { # piped NICK: a second client that sends stdin's lines and leaves
    timeout 10 "$chat" --addr "127.0.0.1:$port" --nick "$1" >/dev/null
}

start_server

# 1. Incoming lines while typing, hostile text, own line once, /echo, history, Ctrl+D.
run_chat --addr "127.0.0.1:$port" --nick alice
# capture-pane drops trailing blanks: an empty prompt is a line holding just `>`.
for _ in $(seq 100); do screen | grep -qx '>' && break; sleep 0.1; done
check "prompt" ">"
check "joined" "[lobby] * alice joined"
tmux send-keys -t "$session" "hello wor"
check "half-typed line" "> hello wor"
printf 'hi alice \033[31mred\033[0m \033]0;pwned\007\n/msg alice psst\n' | piped bob
check "incoming room line" '[lobby] <bob> hi alice \x1b[31mred\x1b[0m \x1b]0;pwned\x07'
check "incoming direct message" '[dm] <bob> psst'
check "half-typed line survives" "> hello wor"
if tmux capture-pane -p -e -t "$session" | grep -q $'\033\\[31m'; then
    failed=$((failed + 1)); echo "FAIL: a colour escape reached the terminal" >&2
else
    passed=$((passed + 1))
fi
tmux send-keys -t "$session" "ld" Enter
check "own line comes back" "[lobby] <alice> hello world"
count=$(screen | grep -cF '<alice> hello world' || true)
[ "$count" = 1 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: own line shown $count times" >&2; }
tmux send-keys -t "$session" "/echo ping" Enter
check "echo timings" 'echo "ping": sent '
check "echo round trip" "round trip"
tmux send-keys -t "$session" Up
check "history" "> /echo ping"
tmux send-keys -t "$session" C-u C-d
check "ctrl-d exits 0" "EXIT=0"
check "ctrl-d restores the terminal" "TTY=cooked"
keep 1-chat-and-ctrl-d

# 2. Ctrl+C with a half-typed line.
run_chat --addr "127.0.0.1:$port"
check "connected" "connected as guest-"
tmux send-keys -t "$session" "never sent"
tmux send-keys -t "$session" C-c
check "ctrl-c exits 0" "EXIT=0"
check "ctrl-c restores the terminal" "TTY=cooked"
keep 2-ctrl-c

# 3. /quit.
run_chat --addr "127.0.0.1:$port"
check "connected" "connected as guest-"
tmux send-keys -t "$session" "/quit" Enter
check "/quit exits 0" "EXIT=0"
keep 3-quit

# 4. Server shutdown while a line is half typed.
run_chat --addr "127.0.0.1:$port" --no-reconnect
check "connected" "connected as guest-"
tmux send-keys -t "$session" "half typed"
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
check "shutdown notice" "* server shutting down"
check "shutdown message" "chat: server shut down"
check "shutdown exits 5" "EXIT=5"
check "shutdown restores the terminal" "TTY=cooked"
keep 4-shutdown

# 5. Connection refused (no server now).
run_chat --addr "127.0.0.1:$port"
check "refused message" "chat: cannot connect to 127.0.0.1:$port"
check "refused exits 3" "EXIT=3"
check_not "no panic" "panicked"
keep 5-refused

# 6. Server killed without a word.
start_server
run_chat --addr "127.0.0.1:$port" --no-reconnect
check "connected" "connected as guest-"
disown "$server_pid" # no "Killed" job report from this shell
kill -KILL "$server_pid"
server_pid=""
check "lost message" "chat: connection to the server lost"
check "lost exits 4" "EXIT=4"
check "lost restores the terminal" "TTY=cooked"
keep 6-killed

# 7. Server killed under a running chat and restarted on the same port: the client says
#    so, reconnects by itself, joins without the history the new server lacks, and the
#    session goes on with the nick and room it had.
start_server
run_chat --addr "127.0.0.1:$port" --nick carol
check "connected" "[lobby] * carol joined"
tmux send-keys -t "$session" "before" Enter
check "own line" "[lobby] <carol> before"
disown "$server_pid"
kill -KILL "$server_pid"
server_pid=""
check "status line" "* connection lost: the server closed the connection; reconnecting in "
check "failed attempts are shown" "* attempt 1 failed: Connection refused"
tmux send-keys -t "$session" "half typed"
start_server "$port"
check "history not available" "lobby: history not available"
check "reconnected" "* reconnected, 0 messages replayed; history not available for lobby"
check "nick taken back" "* took back nick carol"
check "half-typed line survives the reconnect" "> half typed"
tmux send-keys -t "$session" C-u "after" Enter
check "still works" "[lobby] <carol> after"
printf 'hi carol\n' | piped dave
check "others reach it" "[lobby] <dave> hi carol"
check_not "no exit" "EXIT="
tmux send-keys -t "$session" C-d
check "ctrl-d after reconnecting exits 0" "EXIT=0"
check "reconnect restores the terminal" "TTY=cooked"
keep 7-reconnect

echo "tmux.sh: $passed passed, $failed failed"
[ "$failed" = 0 ]
