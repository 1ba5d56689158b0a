#!/usr/bin/env python3
"""`make soak`: mixed AMQP and Kafka load on one ferrymq for a long run, with clients killed at
random and the broker killed (SIGKILL) and restarted every few minutes; then a checker.

Load (each a thread with its own connection):
  AMQP publishers   persistent messages to durable queues, publisher confirms: a message counts
                    as confirmed once basic.ack came back.
  AMQP consumers    manual acks (prefetch 100); now and then one drops its connection without
                    acking (redeliveries are allowed, losses are not).
  Kafka producer    idempotent, acks=all: a record counts once its delivery report succeeded;
                    now and then it is dropped without flushing and a new one takes over.
  Kafka consumer    a consumer group committing what it has read.
The broker's RSS and RssAnon are sampled every 5 s.

The checker drains the queues and reads the topic from the beginning: every confirmed AMQP
message and every acknowledged Kafka record must be there. It reports redeliveries,
duplicates, restarts and RSS over time (first and last thirds), prints one JSON summary and
exits 1 if anything confirmed was lost. Not part of `make test`.
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika
from confluent_kafka import Consumer, Producer

ROOT = Path(__file__).resolve().parent.parent
QUEUES = ["soak-a", "soak-b"]
TOPIC = "soak-events"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary: str, data_dir: str):
        self.binary, self.data_dir = binary, data_dir
        self.amqp, self.kafka, self.http = free_port(), free_port(), free_port()
        self.proc = None
        self.restarts = 0

    def start(self):
        log = open(Path(self.data_dir).parent / "ferrymq.log", "a")
        self.proc = subprocess.Popen(
            [self.binary, "--data-dir", self.data_dir, "--amqp-listen", f"127.0.0.1:{self.amqp}",
             "--kafka-listen", f"127.0.0.1:{self.kafka}", "--http-listen", f"127.0.0.1:{self.http}"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.amqp), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("ferrymq did not start within 60 s")

    def crash_and_restart(self):
        self.proc.kill()
        self.proc.wait(30)
        self.restarts += 1
        self.start()

    def memory(self):
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                fields[key] = int(value.split()[0]) // 1024
        return fields


class Soak:
    def __init__(self, broker: Broker, seconds: float):
        self.broker, self.deadline = broker, time.monotonic() + seconds
        self.lock = threading.Lock()
        self.confirmed, self.received = set(), set()
        self.deliveries = 0
        self.acked_records, self.read_records = set(), set()
        self.rss = []
        self.client_kills = 0
        self.running = True

    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.broker.amqp}/%2F?heartbeat=10"

    def amqp_publisher(self, n: int):
        seq = 0
        while self.running:
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.url()))
                ch = conn.channel()
                ch.confirm_delivery()
                for q in QUEUES:
                    ch.queue_declare(q, durable=True)
                while self.running:
                    body = f"p{n}-{seq}"
                    seq += 1
                    ch.basic_publish("", QUEUES[seq % 2], body.encode(), pika.BasicProperties(delivery_mode=2))
                    with self.lock:
                        self.confirmed.add(body)
                    if random.random() < 0.002:
                        self.client_kills += 1
                        conn._impl._transport._sock.close()  # a client killed mid-stream
                        break
                conn.close()
            except Exception:  # the broker was killed, or this client was
                time.sleep(0.2)

    def amqp_consumer(self, queue: str):
        while self.running or self.missing_amqp():
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.url()))
                ch = conn.channel()
                ch.queue_declare(queue, durable=True)
                ch.basic_qos(prefetch_count=100)
                for method, _, body in ch.consume(queue, inactivity_timeout=1):
                    if method is None:
                        if not self.running and not self.missing_amqp():
                            break
                        continue
                    with self.lock:
                        self.received.add(body.decode())
                        self.deliveries += 1
                    if random.random() < 0.001:
                        self.client_kills += 1
                        conn._impl._transport._sock.close()  # dies holding unacked deliveries
                        break
                    ch.basic_ack(method.delivery_tag)
                conn.close()
            except Exception:
                time.sleep(0.2)
            if not self.running and not self.missing_amqp():
                return

    def missing_amqp(self):
        with self.lock:
            return len(self.confirmed - self.received)

    def kafka_producer(self):
        seq = 0
        while self.running:
            producer = Producer({"bootstrap.servers": f"127.0.0.1:{self.broker.kafka}",
                                 "enable.idempotence": True, "linger.ms": 5})
            until = time.monotonic() + random.uniform(20, 120)
            while self.running and time.monotonic() < until:
                value = f"k{seq}"
                seq += 1

                def done(err, msg, value=value):
                    if err is None:
                        with self.lock:
                            self.acked_records.add(value)
                try:
                    producer.produce(TOPIC, key=str(seq % 16), value=value, on_delivery=done)
                except BufferError:
                    producer.poll(0.5)
                producer.poll(0)
                time.sleep(0.001)
            if self.running:
                self.client_kills += 1  # dropped without a flush: unacknowledged records may be lost
            else:
                producer.flush(60)

    def kafka_consumer(self):
        consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{self.broker.kafka}", "group.id": "soak",
                             "auto.offset.reset": "earliest", "enable.auto.commit": True})
        consumer.subscribe([TOPIC])
        while self.running:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                with self.lock:
                    self.read_records.add(m.value().decode())
        consumer.close()

    def sampler(self, started):
        while self.running:
            try:
                self.rss.append((round(time.monotonic() - started), self.broker.memory()))
            except OSError:
                pass  # between a kill and the restart
            time.sleep(5)

    def run(self, kill_every: float, publishers: int):
        started = time.monotonic()
        # Daemons: a consumer still waiting for a lost message must not keep the checker from
        # reporting it.
        threads = [threading.Thread(target=self.amqp_publisher, args=(n,), daemon=True) for n in range(publishers)]
        threads += [threading.Thread(target=self.amqp_consumer, args=(q,), daemon=True) for q in QUEUES]
        threads += [threading.Thread(target=t, daemon=True) for t in (self.kafka_producer, self.kafka_consumer)]
        threads.append(threading.Thread(target=self.sampler, args=(started,), daemon=True))
        for t in threads:
            t.start()
        next_kill = time.monotonic() + kill_every
        while time.monotonic() < self.deadline:
            time.sleep(1)
            if time.monotonic() >= next_kill:
                print(f"soak: kill -9 at {time.monotonic() - started:.0f}s", flush=True)
                self.broker.crash_and_restart()
                next_kill = time.monotonic() + kill_every
        self.running = False
        for t in threads[:-1]:
            t.join(180)
        return time.monotonic() - started

    def topic_contents(self):
        consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{self.broker.kafka}", "group.id": "soak-check",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([TOPIC])
        values, idle = [], 0
        while idle < 10:
            m = consumer.poll(1.0)
            if m is None:
                idle += 1
            elif m.error() is None:
                idle = 0
                values.append(m.value().decode())
        consumer.close()
        return values


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kill-every", type=float, default=180.0, help="seconds between broker kills")
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "ferrymq"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferrymq-soak-") as tmp:
        broker = Broker(args.binary, os.path.join(tmp, "data"))
        broker.start()
        soak = Soak(broker, args.minutes * 60)
        elapsed = soak.run(args.kill_every, args.publishers)
        log = soak.topic_contents()
        lost_amqp = sorted(soak.confirmed - soak.received)
        lost_kafka = sorted(soak.acked_records - set(log))
        third = max(1, len(soak.rss) // 3)
        median = lambda xs, k: sorted(x[1].get(k, 0) for x in xs)[len(xs) // 2] if xs else 0
        summary = {
            "seconds": round(elapsed), "broker_kills": broker.restarts, "client_kills": soak.client_kills,
            "amqp_confirmed": len(soak.confirmed), "amqp_deliveries": soak.deliveries,
            "amqp_redeliveries": soak.deliveries - len(soak.received), "amqp_lost": len(lost_amqp),
            "kafka_acknowledged": len(soak.acked_records), "kafka_in_log": len(log),
            "kafka_duplicates_in_log": len(log) - len(set(log)), "kafka_lost": len(lost_kafka),
            "rss_mib_median_first_third": median(soak.rss[:third], "VmRSS"),
            "rss_mib_median_last_third": median(soak.rss[-third:], "VmRSS"),
            "rss_anon_mib_median_first_third": median(soak.rss[:third], "RssAnon"),
            "rss_anon_mib_median_last_third": median(soak.rss[-third:], "RssAnon"),
            "lost_examples": (lost_amqp + lost_kafka)[:10],
        }
        broker.proc.send_signal(signal.SIGTERM)
        broker.proc.wait(30)
        print(json.dumps(summary, indent=2))
        return 1 if lost_amqp or lost_kafka else 0


if __name__ == "__main__":
    sys.exit(main())
