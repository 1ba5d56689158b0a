"""Helpers shared by the interop tests: one ferrymq log seen by AMQP (pika) and Kafka
(confluent-kafka) clients at once.

Test modules import what they use from here by name (fixtures included): a second
`conftest.py` would shadow the suite's root one.
"""

import itertools
import os
import time
import uuid

import pika
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker

_counter = itertools.count()

STREAM = {"x-queue-type": "stream"}


def unique(prefix: str) -> str:
    """A name no other test uses, legal as a queue name and as a Kafka topic name."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One ferrymq per module; tests use their own queue, topic and group names."""
    b = Broker(
        tmp_path_factory.mktemp("interop") / "data",
        env={
            "FERRYMQ_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
            # Retention tests see old segments go within a fraction of a second.
            "FERRYMQ_KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS": "100",
        },
    ).start()
    yield b
    b.stop()


def connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name: str, partitions: int = 1, config=None):
    client = admin(broker)  # kept alive until the result is in
    futures = client.create_topics([NewTopic(name, partitions, 1, config=dict(config or {}))])
    futures[name].result(10)


def producer(broker, **conf) -> Producer:
    return Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, **conf})


def produce(p: Producer, topic: str, records, flush_each=True):
    """Produces (key, value, headers, timestamp_ms) tuples; returns their partitions, in
    record order (delivery reports arrive per partition, not in produce order)."""
    partitions = [None] * len(records)

    def report_for(index):
        def report(err, msg):
            assert err is None, err
            partitions[index] = msg.partition()

        return report

    for index, (key, value, headers, ts) in enumerate(records):
        kwargs = {
            "key": key,
            "value": value,
            "headers": headers or [],
            "on_delivery": report_for(index),
        }
        if ts is not None:
            kwargs["timestamp"] = ts
        p.produce(topic, **kwargs)
        if flush_each:
            # One batch per record, so batch boundaries ("last") are known.
            assert p.flush(10) == 0
    assert p.flush(10) == 0
    assert None not in partitions
    return partitions


def kafka_read(broker, topic: str, n: int, partitions=(0,), timeout=15.0):
    """Reads `n` records from the start of `partitions` (no group), in arrival order."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": unique("reader"),
        "enable.auto.commit": False,
    })
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
    finally:
        c.close()
    assert len(got) == n, f"read {len(got)} of {n} records"
    return got


class StreamReader:
    """A pika consumer of a stream queue that acknowledges as it goes."""

    def __init__(self, url: str, queue: str, offset=None, prefetch=100, arguments=None):
        self.conn = connect(url)
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=prefetch)
        args = dict(arguments or {})
        if offset is not None:
            args["x-stream-offset"] = offset
        self.got = []
        self.tag = self.ch.basic_consume(queue, self._on, arguments=args)

    def _on(self, ch, method, props, body):
        self.got.append((method, props, body))
        ch.basic_ack(method.delivery_tag)

    def take(self, n: int, timeout: float = 10.0):
        """Waits until `n` deliveries arrived (bounded); returns all so far."""
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
        assert len(self.got) >= n, f"got {len(self.got)} of {n} deliveries"
        return list(self.got)

    def settle(self, seconds: float = 0.5):
        """Everything that arrives within `seconds` (for "nothing more" checks)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
        return list(self.got)

    def close(self):
        self.conn.close()


def bodies(deliveries):
    return [body.decode() for _, _, body in deliveries]


def offsets(deliveries):
    return [props.headers["x-stream-offset"] for _, props, _ in deliveries]
