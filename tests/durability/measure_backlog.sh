#!/bin/bash
# The large-backlog measurement of docs/durability.md: fill a durable queue with N persistent
# 1 KiB messages (publisher confirms), kill -9 the broker, restart it with a cold page cache
# (drop_caches: needs root), drain the queue; the broker's RSS is sampled every 0.2 s.
# Usage: tests/durability/measure_backlog.sh   (N=5242880 is 5 GiB of bodies)
# Needs the release binary (cargo build --release --bin ferrymq) and ferrymq-perf
# (cargo build --release -p ferrymq-perf); PERF, BIN, OUT override their paths.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/ferrymq}
PERF=${PERF:-$ROOT/target/release/ferrymq-perf}
OUT=${OUT:-$ROOT/target/durability-measure}
DATA=$OUT/data
N=${N:-5242880}
mkdir -p $OUT
URI='amqp://guest:guest@127.0.0.1:25672/%2f'
start_broker() {
  local before=$(wc -l < $OUT/broker.log)
  $BIN --data-dir $DATA --amqp-listen 127.0.0.1:25672 --kafka-listen 127.0.0.1:29092 --http-listen 127.0.0.1:25673 >> $OUT/broker.log 2>&1 &
  PID=$!
  local t0=$(date +%s.%N)
  local waited=0
  until tail -n +$((before + 1)) $OUT/broker.log | grep -q "ferrymq ready"; do
    kill -0 $PID 2>/dev/null && [ $waited -lt 12000 ] || { echo "broker did not start"; exit 1; }
    sleep 0.01; waited=$((waited + 1))
  done
  local t1=$(date +%s.%N)
  echo "broker $PID ready after $(echo "$t1 - $t0" | bc) s"
}
sample_rss() {  # peak VmRSS (kB) of $1 into $2 until it exits or the flag file goes
  local pid=$1 file=$2; : > $file
  while [ -e $OUT/sampling ] && kill -0 $pid 2>/dev/null; do
    grep -E "VmRSS|RssAnon|RssFile" /proc/$pid/status | tr -s ' ' | tr '\n' ' ' >> $file; echo >> $file
    sleep 0.2
  done
}
peak() { awk '{for(i=1;i<=NF;i++) if($i=="VmRSS:") if($(i+1)>m) m=$(i+1)} END {printf "%.1f MiB\n", m/1024}' $1; }
peakanon() { awk '{for(i=1;i<=NF;i++) if($i=="RssAnon:") if($(i+1)>m) m=$(i+1)} END {printf "%.1f MiB\n", m/1024}' $1; }
rm -rf $DATA; : > $OUT/broker.log
df -h $OUT | tail -1
start_broker
touch $OUT/sampling; sample_rss $PID $OUT/rss-fill.txt & S=$!
/usr/bin/time -f "fill wall %e s" $PERF amqp --uri "$URI" --broker-pid $PID --size 1024 --durable --persistent --confirm 1000 --consumers 0 --count $N --queue big --keep --quiet --json $OUT/fill.json
rm -f $OUT/sampling; wait $S
echo "fill peak RSS $(peakanon $OUT/rss-fill.txt) anon, $(peak $OUT/rss-fill.txt) total"
du -sh $DATA/queues
kill -9 $PID; wait $PID 2>/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches
start_broker
grep -E "recovered durable queue|restored durable queues|torn tail" $OUT/broker.log | tail -3
touch $OUT/sampling; sample_rss $PID $OUT/rss-drain.txt & S=$!
/usr/bin/time -f "drain wall %e s" $PERF amqp --uri "$URI" --broker-pid $PID --size 1024 --durable --producers 0 --consumers 1 --count $N --prefetch 1000 --multi-ack-every 100 --queue big --keep --quiet --json $OUT/drain.json
rm -f $OUT/sampling; wait $S
echo "drain peak RSS $(peakanon $OUT/rss-drain.txt) anon, $(peak $OUT/rss-drain.txt) total"
du -sh $DATA/queues
kill $PID; wait $PID
