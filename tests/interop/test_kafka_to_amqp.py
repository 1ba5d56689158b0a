"""Kafka producers write, AMQP consumers read: a topic created and filled by
confluent-kafka is a stream queue pika consumes with RabbitMQ's x-stream-offset semantics."""

import datetime
import time

import pika
import pytest

from interop_helpers import (  # noqa: F401 (fixtures)
    STREAM, StreamReader, bodies, broker, connect, create_topic, kafka_read, offsets,
    produce, producer, unique,
)

T0 = 1_700_000_000_000  # ms


@pytest.fixture(scope="module")
def topic(broker):
    """Ten records produced by confluent-kafka, one batch each, timestamps T0 + i s."""
    name = unique("events")
    create_topic(broker, name)
    records = [
        (f"user-{i % 3}", f"event-{i}", [("trace", f"t{i}".encode()), ("empty", None)], T0 + i * 1000)
        for i in range(10)
    ]
    produce(producer(broker), name, records)
    return name


def test_a_kafka_topic_is_a_stream_queue(broker, topic):
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ok = ch.queue_declare(topic, passive=True)
    assert ok.method.message_count == 10
    # Declaring it as a stream queue is an equivalent redeclaration; as a classic queue not.
    ch.queue_declare(topic, durable=True, arguments=STREAM)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(topic, durable=True)
    assert e.value.reply_code == 406 and "'x-queue-type'" in e.value.reply_text
    conn.close()


def test_first_reads_everything_with_the_mapping_applied(broker, topic):
    reader = StreamReader(broker.amqp_url, topic, offset="first")
    got = reader.take(10)
    reader.close()
    assert bodies(got) == [f"event-{i}" for i in range(10)]
    assert offsets(got) == list(range(10))
    for i, (method, props, _) in enumerate(got):
        assert method.exchange == ""
        assert method.routing_key == f"user-{i % 3}"
        assert not method.redelivered
        assert props.headers["trace"] == f"t{i}"
        assert props.headers["empty"] is None
        assert props.timestamp == (T0 + i * 1000) // 1000
        assert props.delivery_mode is None


def test_numeric_offset_starts_there(broker, topic):
    reader = StreamReader(broker.amqp_url, topic, offset=7)
    got = reader.take(3)
    assert offsets(got) == [7, 8, 9]
    assert len(reader.settle(0.3)) == 3
    reader.close()


def test_last_starts_at_the_last_batch(broker, topic):
    reader = StreamReader(broker.amqp_url, topic, offset="last")
    got = reader.take(1)
    assert offsets(reader.settle(0.3)) == [9]
    assert bodies(got) == ["event-9"]
    reader.close()


def test_timestamp_starts_at_the_first_record_at_or_after_it(broker, topic):
    # An AMQP timestamp (seconds): T0 + 6 s.
    when = datetime.datetime.fromtimestamp((T0 + 6000) / 1000, tz=datetime.timezone.utc)
    reader = StreamReader(broker.amqp_url, topic, offset=when.replace(tzinfo=None))
    got = reader.take(4)
    assert offsets(reader.settle(0.3)) == [6, 7, 8, 9]
    assert bodies(got)[0] == "event-6"
    reader.close()


def test_next_and_intervals_see_only_new_records(broker):
    name = unique("live")
    create_topic(broker, name)
    p = producer(broker)
    produce(p, name, [(b"k", b"old", None, None)])
    time.sleep(0.05)
    nxt = StreamReader(broker.amqp_url, name)  # no x-stream-offset: "next"
    recent = StreamReader(broker.amqp_url, name, offset="10m")
    assert nxt.settle(0.3) == []
    produce(p, name, [(b"k", b"new", None, None)])
    assert bodies(nxt.take(1)) == ["new"]
    # The old record was produced a moment ago: within the last 10 minutes.
    assert bodies(recent.take(2)) == ["old", "new"]
    nxt.close()
    recent.close()


def test_consumers_are_independent_and_acks_are_credit(broker, topic):
    """Two consumers read the same records; a consumer with prefetch 2 that does not ack
    stops after 2, and acking lets it continue."""
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2)
    held = []
    ch.basic_consume(topic, lambda c, m, p, b: held.append(m), arguments={"x-stream-offset": "first"})
    deadline = time.monotonic() + 5
    while len(held) < 2 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    conn.process_data_events(time_limit=0.3)
    assert len(held) == 2, "prefetch bounds what is unacknowledged"
    other = StreamReader(broker.amqp_url, topic, offset="first")
    assert len(other.take(10)) == 10
    other.close()
    ch.basic_ack(held[-1].delivery_tag, multiple=True)
    deadline = time.monotonic() + 5
    while len(held) < 4 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert [m.delivery_tag for m in held] == [1, 2, 3, 4]
    # A nack or a reject is credit too (nothing is requeued: it is a log).
    ch.basic_nack(held[2].delivery_tag)
    ch.basic_reject(held[3].delivery_tag, requeue=False)
    deadline = time.monotonic() + 5
    while len(held) < 6 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert len(held) == 6 and not any(m.redelivered for m in held)
    conn.close()


def test_stream_queue_rules(broker, topic):
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume(topic, lambda *a: None)
        conn.process_data_events(time_limit=0.5)
    assert e.value.reply_code == 406 and "prefetch count is not set" in e.value.reply_text
    ch = conn.channel()
    ch.basic_qos(prefetch_count=5)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume(topic, lambda *a: None, arguments={"x-stream-offset": "tomorrow"})
    assert e.value.reply_code == 406 and "x-stream-offset" in e.value.reply_text
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_get(topic)
    assert e.value.reply_code == 540
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=5)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_consume(topic, lambda *a: None, auto_ack=True)
        conn.process_data_events(time_limit=0.5)
    assert e.value.reply_code == 540 and "automatic acknowledgement" in e.value.reply_text


def test_kafka_reads_amqp_published_records_of_the_same_topic(broker, topic):
    """Both protocols append to one log: an AMQP publish lands after the Kafka records."""
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    name = unique("mixed")
    create_topic(broker, name)
    produce(producer(broker), name, [(b"k", b"from-kafka", None, None)])
    ch.confirm_delivery()
    ch.basic_publish("", name, b"from-amqp")
    conn.close()
    records = kafka_read(broker, name, 2)
    assert [r.value() for r in records] == [b"from-kafka", b"from-amqp"]
    reader = StreamReader(broker.amqp_url, name, offset="first")
    assert bodies(reader.take(2)) == ["from-kafka", "from-amqp"]
    reader.close()
