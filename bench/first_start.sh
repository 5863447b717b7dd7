#!/usr/bin/env bash
# A new operator's first start, measured: for each run, a fresh clone of this checkout's
# HEAD, cold installer caches, then ./scripts/run.sh, timed until the printed agent URL
# answers eth_chainId. Usage: bench/first_start.sh [RUNS=3] [PORT=19140] [DEVNET_PORT=19240]
set -u
runs=${1:-3}
port=${2:-19140}
devnet_port=${3:-19240}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for n in $(seq 1 "$runs"); do
    dir="$work/clone$n"
    git clone -q "$root" "$dir"
    log="$work/run$n.log"
    start=$(date +%s.%N)
    (
        cd "$dir" &&
            exec setsid env -u WALLETGATE_CONFIG UV_CACHE_DIR="$work/uv$n" PIP_NO_CACHE_DIR=1 \
                ./scripts/run.sh --port "$port" --devnet-port "$devnet_port"
    ) >"$log" 2>&1 &
    pid=$!
    answer=""
    for _ in $(seq 1 3000); do
        url=$(grep -o "agent URL: *http[^ ]*" "$log" 2>/dev/null | awk '{print $3}')
        if [ -n "$url" ] && answer=$(curl -s -m 2 -H 'content-type: application/json' \
            -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$url") &&
            [[ "$answer" == *result* ]]; then
            break
        fi
        answer=""
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    end=$(date +%s.%N)
    if [ -n "$answer" ]; then
        printf 'run %d: first answer after %.1f s\n' "$n" "$(echo "$end - $start" | bc)"
    else
        printf 'run %d: no answer (see %s)\n' "$n" "$log"
        tail -20 "$log"
    fi
    kill -TERM -- -"$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 -- -"$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- -"$pid" 2>/dev/null || true
done
