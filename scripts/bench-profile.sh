#!/usr/bin/env bash
# `make bench-profile`: CPU profiles of a release ferrymq under load from ferrymq-perf.
#
# For each scenario (default: A1 A2 K1; pass others as arguments, e.g. `A3 K3`), starts a fresh
# broker, runs the scenario, records the broker with `perf record --call-graph dwarf` for the
# measured window and writes target/bench-profile/<scenario>.data (the raw profile),
# <scenario>.txt (self time per symbol) and <scenario>.callers.txt (inclusive time with call
# chains).
# The scenario arguments are those of scripts/bench.py (`make bench`), in short windows.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
ferrymq=${PROFILE_FERRYMQ:-$bin/ferrymq}   # another build of the broker to compare with
out=$root/target/bench-profile
data=${FERRYMQ_BENCH_DIR:-$root/target/bench-data}/profile
duration=${PROFILE_SECONDS:-8}
mkdir -p "$out"
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(A1 A2 K1)

consumer=(--prefetch 1000 --multi-ack-every 100)
args_for() {
    case $1 in
        A1) echo amqp --size 16 "${consumer[@]}" ;;
        A2) echo amqp --size 1024 --persistent --durable --confirm 1000 "${consumer[@]}" ;;
        A3) echo amqp --size 16 --rate 5000 "${consumer[@]}" ;;
        A4) echo amqp --size 16 --fanout 10 "${consumer[@]}" ;;
        K1) echo kafka --size 1024 --acks all --partitions 3 --linger-ms 5 --consumers 0 ;;
        K1-always) echo kafka --size 1024 --acks all --partitions 3 --linger-ms 5 --consumers 0 \
                        --topic-config flush.messages=1 ;;
        K3) echo kafka --size 1024 --acks all --partitions 3 --linger-ms 0 --rate 5000 ;;
        *) echo "unknown scenario $1 (A1 A2 A3 A4 K1 K1-always K3)" >&2; return 1 ;;
    esac
}

for s in "${scenarios[@]}"; do
    args=$(args_for "$s")
    rm -rf "$data"
    "$ferrymq" --data-dir "$data" --amqp-listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 \
        --http-listen 127.0.0.1:0 --log-level warn,ferrymq=info 2>"$out/$s.log" &
    pid=$!
    for _ in $(seq 1 200); do
        grep -q "ferrymq ready" "$out/$s.log" && break
        sleep 0.05
    done
    amqp=$(grep -o 'amqp=[^ ]*' "$out/$s.log" | head -1 | cut -d= -f2)
    kafka=$(grep -o 'kafka=[^ ]*' "$out/$s.log" | head -1 | cut -d= -f2)
    case $args in
        amqp*) target=(--uri "amqp://guest:guest@$amqp/%2f") ;;
        kafka*) target=(--bootstrap "$kafka") ;;
    esac
    # shellcheck disable=SC2086
    "$bin/ferrymq-perf" $args "${target[@]}" --broker-pid "$pid" --warmup 1 \
        --duration "$((duration + 1))" --label "$s" --quiet &
    load=$!
    sleep 1
    perf record -F 499 --call-graph dwarf,32768 -p "$pid" -o "$out/$s.data" -- sleep "$duration" \
        2>/dev/null
    wait "$load"
    kill -TERM "$pid"
    wait "$pid" || true
    perf report -i "$out/$s.data" --no-children -g none --percent-limit 0.3 --stdio \
        2>/dev/null >"$out/$s.txt"
    perf report -i "$out/$s.data" --children -g caller,2,callee --max-stack 14 \
        --percent-limit 2 --stdio 2>/dev/null >"$out/$s.callers.txt"
    echo "bench-profile: $s -> $out/$s.txt (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
