"""AMQP publishers write, Kafka consumers read: a stream queue declared with pika is a Kafka
topic, and what pika publishes through an exchange bound to it is what confluent-kafka
reads (key = routing key, value = body, AMQP properties and headers as Kafka headers)."""

import decimal

import time

import pika
from confluent_kafka import Consumer

from interop_helpers import (  # noqa: F401 (fixtures)
    STREAM, admin, broker, connect, kafka_read, unique,
)


def test_pika_publishes_through_an_exchange_and_kafka_reads_the_topic(broker):
    topic = unique("orders")
    exchange = unique("orders-x")
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ok = ch.queue_declare(topic, durable=True, arguments=STREAM)
    assert ok.method.message_count == 0
    ch.exchange_declare(exchange, "topic")
    ch.queue_bind(topic, exchange, "order.#")
    ch.confirm_delivery()
    keys = [f"order.{region}" for region in ("eu", "us", "ap")]
    for i in range(30):
        ch.basic_publish(
            exchange,
            keys[i % 3],
            f"body-{i}".encode(),
            pika.BasicProperties(
                headers={"n": i, "source": "shop", "ok": i % 2 == 0},
                content_type="application/json",
                message_id=f"m{i}",
                delivery_mode=2,
            ),
            mandatory=True,
        )
    # Confirmed publishes are visible at once; declare-ok counts them.
    assert ch.queue_declare(topic, passive=True).method.message_count == 30
    conn.close()

    md = admin(broker).list_topics(topic=topic, timeout=10).topics[topic]
    assert md.error is None and len(md.partitions) == 1

    records = kafka_read(broker, topic, 30)
    assert [r.offset() for r in records] == list(range(30))
    assert [r.key().decode() for r in records] == [keys[i % 3] for i in range(30)]
    assert [r.value().decode() for r in records] == [f"body-{i}" for i in range(30)]
    for i, record in enumerate(records):
        headers = dict(record.headers())
        assert headers["amqp.exchange"] == exchange.encode()
        assert headers["amqp.content-type"] == b"application/json"
        assert headers["amqp.message-id"] == f"m{i}".encode()
        assert headers["amqp.delivery-mode"] == b"2"
        # User headers keep their names; numbers and booleans as text, typed by amqp.types.
        assert headers["n"] == str(i).encode()
        assert headers["source"] == b"shop"
        assert headers["ok"] == (b"true" if i % 2 == 0 else b"false")
        assert headers["amqp.types"] == b"ISt"
        assert [k for k, _ in record.headers() if not k.startswith("amqp.")] == ["n", "source", "ok"]


def test_records_carry_the_timestamp_property_and_a_kafka_group_reads_them(broker):
    """A Kafka consumer group sees the AMQP-published records like any other."""
    topic = unique("ts")
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.queue_declare(topic, durable=True, arguments=STREAM)
    ch.confirm_delivery()
    ch.basic_publish("", topic, b"stamped", pika.BasicProperties(timestamp=1_700_000_000))
    ch.basic_publish("", topic, b"unstamped")
    conn.close()
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": unique("g"),
        "auto.offset.reset": "earliest",
    })
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    c.close()
    assert [m.value() for m in got] == [b"stamped", b"unstamped"]
    # Published through the default exchange: the routing key (the queue name) is the key.
    assert got[0].key() == topic.encode()
    assert got[0].timestamp()[1] == 1_700_000_000_000
    assert abs(got[1].timestamp()[1] / 1000 - time.time()) < 60, "broker time when unset"
    assert dict(got[0].headers())["amqp.timestamp"] == b"1700000000"


def test_typed_headers_survive_even_when_kafka_applications_cannot_read_them(broker):
    topic = unique("typed")
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.queue_declare(topic, durable=True, arguments=STREAM)
    ch.confirm_delivery()
    headers = {
        "list": [1, "two", [3]],
        "table": {"nested": True, "n": -5},
        "price": decimal.Decimal("12.50"),
        "big": 2**40,
        "none": None,
    }
    ch.basic_publish("", topic, b"x", pika.BasicProperties(headers=headers))
    conn.close()
    (record,) = kafka_read(broker, topic, 1)
    got = dict(record.headers())
    assert got["price"] == b"12.5", "pika sends Decimal normalized (scale 1)"
    assert got["big"] == str(2**40).encode()
    assert got["none"] is None
    assert got["amqp.types"] == b"AFDlV"
    assert got["list"].startswith(b"\x00\x00\x00"), "arrays: AMQP's binary encoding"
