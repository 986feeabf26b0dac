#!/usr/bin/env bash
# Load and soak run (issue 9, item 4): builds the example server and the soak
# tool (release), starts the server on a free loopback port with the memory
# store — or, with --redis, with a redis-server of its own on another free
# port — runs examples/soak.rs against it, and stops everything.
#
#   scripts/soak.sh [--redis] [--duration 10m] [--idle-timeout 20s] [-- soak tool options]
#
# e.g. scripts/soak.sh --duration 10m
#      scripts/soak.sh --redis --duration 10m -- --rate 1500 --concurrency 24
# Tool options: cargo run --release --example soak -- --help
# Logs and the users file go to a temp dir, printed at the start.
set -euo pipefail
cd "$(dirname "$0")/.."

redis=0
duration=60s
idle=20s
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --redis) redis=1 ;;
        --duration) duration="$2"; shift ;;
        --idle-timeout) idle="$2"; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --features redis --example server --example soak
bin=target/release/examples
work=$(mktemp -d "${TMPDIR:-/tmp}/tower-cis-soak.XXXXXX")
echo "soak: work dir $work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "soak: nothing listens on port $1" >&2
    return 1
}

password="soak-$RANDOM$RANDOM"
"$bin/soak" --write-users-file "$work/users" --users 20 --password "$password"

store_args=()
if [[ $redis == 1 ]]; then
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
        >"$work/redis.log" 2>&1 &
    pids+=($!)
    wait_port "$rport"
    store_args=(--redis "redis://127.0.0.1:$rport")
    echo "soak: redis-server on port $rport"
fi

port=$(free_port)
RUST_LOG=warn "$bin/server" --listen "127.0.0.1:$port" --users-file "$work/users" --idle-timeout "$idle" \
    "${store_args[@]}" >"$work/server.log" 2>&1 &
server=$!
pids+=("$server")
wait_port "$port"
echo "soak: server pid $server on port $port ($([[ $redis == 1 ]] && echo redis || echo memory) store), idle timeout $idle"
if [[ $redis == 1 ]]; then echo "soak: redis keys before: $(redis-cli -p "$rport" dbsize)"; fi

status=0
"$bin/soak" --base "http://127.0.0.1:$port" --users 20 --password "$password" --duration "$duration" \
    --idle-timeout "$idle" --server-pid "$server" "${extra[@]}" || status=$?

if [[ $redis == 1 ]]; then
    echo "soak: redis keys after drain: $(redis-cli -p "$rport" dbsize) (type, size, name with ids masked)"
    redis-cli -p "$rport" --scan | head -50 | while read -r key; do
        type=$(redis-cli -p "$rport" type "$key")
        case "$type" in
            hash) size=$(redis-cli -p "$rport" hlen "$key") ;;
            zset) size=$(redis-cli -p "$rport" zcard "$key") ;;
            set) size=$(redis-cli -p "$rport" scard "$key") ;;
            list) size=$(redis-cli -p "$rport" llen "$key") ;;
            *) size=- ;;
        esac
        echo "  $type $size ${key//[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]/########}"
    done
    redis-cli -p "$rport" --scan --pattern '*idx*' | while read -r key; do
        if [[ $(redis-cli -p "$rport" type "$key") == hash ]]; then
            echo "  $key fields: $(redis-cli -p "$rport" hgetall "$key" | sed -E 's/[0-9a-f]{32}/ID/' | head -10 | tr '\n' ' ')"
        fi
    done
    echo "soak: redis used_memory: $(redis-cli -p "$rport" info memory | grep -E '^used_memory_human' | tr -d '\r')"
fi
if ! kill -0 "$server" 2>/dev/null; then
    echo "soak: the server died; its log:" >&2
    tail -20 "$work/server.log" >&2
    status=1
fi
echo "soak: server log lines at warn and above: $(wc -l <"$work/server.log")"
exit "$status"
