"""Kafka consumer-group offsets and AMQP stream consumers do not affect each other, and a
message that goes AMQP -> Kafka client -> AMQP comes back unchanged."""

import datetime
import decimal
import time

import pika
from confluent_kafka import Consumer, TopicPartition

from interop_helpers import (  # noqa: F401 (fixtures)
    STREAM, StreamReader, bodies, broker, connect, create_topic, kafka_read, produce,
    producer, unique,
)


def group_consumer(broker, group):
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })


def poll_n(consumer, n, timeout=30.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) == n, f"polled {len(got)} of {n}"
    return got


def test_group_offsets_and_amqp_acks_are_independent(broker):
    topic = unique("ledger")
    group = unique("group")
    create_topic(broker, topic)
    produce(producer(broker), topic, [(b"k", f"r{i}", None, None) for i in range(10)], flush_each=False)

    # A Kafka group reads 4 records and commits offset 4.
    c = group_consumer(broker, group)
    c.subscribe([topic])
    first = poll_n(c, 4)
    c.commit(offsets=[TopicPartition(topic, 0, first[-1].offset() + 1)], asynchronous=False)
    c.close()

    # An AMQP consumer reads and acknowledges everything.
    reader = StreamReader(broker.amqp_url, topic, offset="first")
    assert bodies(reader.take(10)) == [f"r{i}" for i in range(10)]
    reader.close()

    # The group's committed offset is untouched, and the group resumes from it.
    c = group_consumer(broker, group)
    (committed,) = c.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed.offset == 4
    c.subscribe([topic])
    assert [m.value() for m in poll_n(c, 6)] == [f"r{i}".encode() for i in range(4, 10)]
    # ...and commits its progress: the AMQP side does not care.
    c.commit(asynchronous=False)
    c.close()
    reader = StreamReader(broker.amqp_url, topic, offset="first")
    assert len(reader.take(10)) == 10, "a group commit moves nothing for AMQP consumers"
    reader.close()
    c = group_consumer(broker, group)
    (committed,) = c.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed.offset == 10
    c.close()


def test_amqp_to_kafka_to_amqp_is_lossless(broker):
    """pika publishes a message with every property and typed headers; a Kafka application
    copies the record (key, value, headers, timestamp) to another topic; pika reads the copy
    and gets the original message back."""
    source, copy = unique("src"), unique("copy")
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.queue_declare(source, durable=True, arguments=STREAM)
    ch.queue_declare(copy, durable=True, arguments=STREAM)
    ch.exchange_declare(source + "-x", "topic")
    ch.queue_bind(source, source + "-x", "#")
    ch.confirm_delivery()
    headers = {
        "text": "héllo",
        "int": -7,
        "long": 2**40,
        "flag": True,
        "price": decimal.Decimal("9.99"),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "list": [1, "a", [True]],
        "table": {"k": "v", "n": 3},
        "void": None,
        "amqp.looks-reserved": "still a user header",
    }
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=5,
        correlation_id="corr-1",
        reply_to="replies",
        expiration="60000",
        message_id="msg-1",
        timestamp=1_700_000_123,
        type="order.created",
        user_id="guest",
        app_id="shop",
        cluster_id="c1",
    )
    ch.basic_publish(source + "-x", "orders.eu", b'{"id": 1}', props)
    conn.close()

    (record,) = kafka_read(broker, source, 1)
    p = producer(broker)
    p.produce(
        copy,
        key=record.key(),
        value=record.value(),
        headers=record.headers(),
        timestamp=record.timestamp()[1],
    )
    assert p.flush(10) == 0

    reader = StreamReader(broker.amqp_url, copy, offset="first")
    ((method, got, body),) = reader.take(1)
    reader.close()
    assert body == b'{"id": 1}'
    assert method.exchange == source + "-x"
    assert method.routing_key == "orders.eu"
    for field in (
        "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id",
        "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id",
        "cluster_id",
    ):
        assert getattr(got, field) == getattr(props, field), field
    received = dict(got.headers)
    assert received.pop("x-stream-offset") == 0
    assert received == headers
    assert list(received) == list(headers), "header order kept"
