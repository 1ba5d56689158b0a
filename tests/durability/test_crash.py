"""The broker is killed with SIGKILL while real clients write to it: pika publishing
persistent messages with publisher confirms, confluent-kafka producing with acks=all and
enable.idempotence. After the restart every confirmed message and every acknowledged record
is there exactly once, the durable definitions exist and committed offsets are unchanged."""

import collections
import threading
import time
import uuid

import pika
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

FAST_GROUPS = {"FERRYMQ_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0"}
TOPIC, PARTITIONS = "crash-t", 3


class Counted:
    """A list that others can wait on until it holds enough items."""

    def __init__(self):
        self.items = []
        self.grew = threading.Condition()

    def append(self, item):
        with self.grew:
            self.items.append(item)
            self.grew.notify_all()

    def wait_for(self, count, timeout, give_up=lambda: False):
        with self.grew:
            return self.grew.wait_for(lambda: len(self.items) >= count or give_up(), timeout)


def amqp_publisher(url, confirmed, died):
    """Publishes persistent messages with confirms until the connection dies."""
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2, message_id="crash")
        i = 0
        while True:
            ch.basic_publish("crash-x", "k", b"a%08d" % i, props, mandatory=True)
            confirmed.append(i)
            i += 1
    except (pika.exceptions.AMQPError, OSError) as e:
        died.append(e)


class KafkaWriter:
    """Produces `v<i>` records with acks=all and idempotence until stopped; librdkafka retries
    what was in flight when the broker died, with the same producer id and sequences."""

    def __init__(self, bootstrap, acked):
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 2, "message.timeout.ms": 60000, "retry.backoff.ms": 20,
            "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
        })
        self.acked = acked
        self.failed = []
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def delivered(self, err, msg):
        if err is None:
            self.acked.append(int(msg.value()[1:]))
        else:
            with self.acked.grew:  # wakes a waiter that gives up on failures
                self.failed.append(err)
                self.acked.grew.notify_all()

    def run(self):
        while not self.stop.is_set():
            if self.sent - len(self.acked.items) - len(self.failed) >= 2000:
                self.producer.poll(0.05)  # serves delivery callbacks; returns on the first
                continue
            try:
                self.producer.produce(TOPIC, key=b"%d" % (self.sent % 7), value=b"v%d" % self.sent,
                                      on_delivery=self.delivered)
                self.sent += 1
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)

    def finish(self, timeout=60):
        self.stop.set()
        self.thread.join(10)
        assert self.producer.flush(timeout) == 0, "every record delivered or failed"


def committed(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def read_topic(bootstrap, topic, partitions):
    """Every record of `topic`: {partition: [value, ...]} in offset order."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                  "enable.auto.commit": False})
    high = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)}
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = collections.defaultdict(list)
    deadline = time.monotonic() + 60
    while sum(map(len, got.values())) < sum(high.values()) and time.monotonic() < deadline:
        for m in c.consume(2000, 1.0):
            assert m.error() is None, m.error()
            got[m.partition()].append(int(m.value()[1:]))
    c.close()
    assert {p: len(v) for p, v in got.items()} == {p: n for p, n in high.items() if n}
    return got


def drain_queue(url, queue):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    total = ch.queue_declare(queue, passive=True).method.message_count
    bodies = []
    for method, _, body in ch.consume(queue, inactivity_timeout=10):
        assert method is not None, f"only {len(bodies)} of {total} delivered"
        bodies.append(body)
        if len(bodies) == total:
            ch.basic_ack(method.delivery_tag, multiple=True)
            break
    ch.cancel()
    conn.close()
    return bodies


@pytest.mark.slow
def test_confirmed_messages_and_acknowledged_records_survive_sigkill_exactly_once(make_broker):
    broker = make_broker(env=FAST_GROUPS)
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    ch = conn.channel()
    ch.exchange_declare("crash-x", "direct", durable=True)
    ch.queue_declare("crash-q", durable=True)
    ch.queue_bind("crash-q", "crash-x", "k")
    conn.close()

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1),
                                   NewTopic("offsets-t", 2, 1, config={"retention.ms": "86400000"})])
    for f in futures.values():
        f.result(10)
    # A group commits offsets before the crash; they must read back unchanged.
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(40):
        p.produce("offsets-t", key=b"%d" % i, value=b"o%d" % i)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "crash-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["offsets-t"])
    seen = 0
    deadline = time.monotonic() + 30
    while seen < 25 and time.monotonic() < deadline:
        seen += len([m for m in c.consume(25 - seen, 1.0) if m.error() is None])
    c.commit(asynchronous=False)
    c.close()
    before = committed(broker.bootstrap, "crash-group", "offsets-t", 2)
    assert sum(before.values()) == seen

    # Both writers run; the broker dies under them.
    confirmed, died = Counted(), []
    amqp = threading.Thread(target=amqp_publisher, args=(broker.amqp_url, confirmed, died),
                            daemon=True)
    acked = Counted()
    kafka = KafkaWriter(broker.bootstrap, acked)
    started = time.monotonic()
    amqp.start()
    kafka.thread.start()
    assert confirmed.wait_for(300, 60) and acked.wait_for(3000, 60), "writers got going"
    broker.kill()
    print(f"killed after {time.monotonic() - started:.1f}s")
    amqp.join(15)
    assert not amqp.is_alive() and died, "the AMQP publisher saw the connection die"
    amqp_confirmed = list(confirmed.items)
    acked_at_kill = len(acked.items)
    print(f"at the kill: {len(amqp_confirmed)} confirmed, {acked_at_kill} acked, {kafka.sent - acked_at_kill} records in flight")

    broker.start()
    # The Kafka producer reconnects, retries what was in flight and goes on.
    more = acked_at_kill + 1000
    acked.wait_for(more, 60, give_up=lambda: bool(kafka.failed))
    kafka.finish()
    assert not kafka.failed, kafka.failed[:3]
    assert len(acked.items) >= more

    # Durable definitions are back and route as before.
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    ch = conn.channel()
    ch.exchange_declare("crash-x", "direct", passive=True)
    ch.queue_declare("crash-q", passive=True)
    conn.close()

    # Every confirmed message exactly once, in publish order (unconfirmed ones may be there).
    got = [int(b[1:]) for b in drain_queue(broker.amqp_url, "crash-q")]
    print(f"after: {len(got)} messages in the queue, {len(acked.items)} records acked")
    assert got == sorted(set(got)), "no duplicates, in order"
    missing = set(amqp_confirmed) - set(got)
    assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"

    # Every acknowledged record exactly once; no record twice (idempotence across the restart).
    records = read_topic(broker.bootstrap, TOPIC, PARTITIONS)
    counts = collections.Counter(v for values in records.values() for v in values)
    twice = [v for v, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} records stored twice, e.g. {sorted(twice)[:5]}"
    lost = set(acked.items) - set(counts)
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"
    for partition, values in records.items():
        assert values == sorted(values), f"partition {partition} keeps produce order"

    assert committed(broker.bootstrap, "crash-group", "offsets-t", 2) == before

    # The queue works on: a message through the durable binding arrives.
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("crash-x", "k", b"after", pika.BasicProperties(delivery_mode=2),
                     mandatory=True)
    assert ch.queue_declare("crash-q", passive=True).method.message_count == 1
    conn.close()
