"""The Kafka listener serves the streams of one vhost (`kafka.vhost`, default "/"): there a
stream queue is a topic and a topic a stream queue; streams of other vhosts stay AMQP-only."""

import pika
import pytest

from interop_helpers import (  # noqa: F401 (fixtures)
    STREAM, StreamReader, bodies, create_topic, kafka_read, produce, producer, unique,
)

CONFIG = """
[server]
vhosts = ["/", "events"]

[kafka]
vhost = "events"

[amqp]
users = [{ name = "guest", password = "guest", vhosts = ["*"], tags = [] }]
"""


@pytest.fixture
def events_broker(make_broker, tmp_path):
    path = tmp_path / "ferrymq.toml"
    path.write_text(CONFIG)
    return make_broker(args=["--config", str(path)])


def url(broker, vhost):
    return broker.amqp_url.rsplit("/", 1)[0] + "/" + vhost.replace("/", "%2F")


def test_only_the_kafka_vhost_streams_are_topics(events_broker):
    from confluent_kafka.admin import AdminClient

    in_events, in_root = unique("in-events"), unique("in-root")
    for vhost, name in (("events", in_events), ("/", in_root)):
        conn = pika.BlockingConnection(pika.URLParameters(url(events_broker, vhost)))
        ch = conn.channel()
        ch.queue_declare(name, durable=True, arguments=STREAM)
        ch.confirm_delivery()
        ch.basic_publish("", name, f"hello from {vhost}".encode())
        conn.close()

    client = AdminClient({"bootstrap.servers": events_broker.bootstrap})
    topics = client.list_topics(timeout=10).topics
    assert in_events in topics and len(topics[in_events].partitions) == 1
    assert in_root not in topics, "a stream of another vhost is not a topic"
    (record,) = kafka_read(events_broker, in_events, 1)
    assert record.value() == b"hello from events"

    # A topic created over Kafka is a stream queue of the Kafka vhost only.
    topic = unique("created")
    create_topic(events_broker, topic, partitions=2)
    produce(producer(events_broker, partitioner="murmur2_random"), topic, [(b"k", b"v", None, None)])
    conn = pika.BlockingConnection(pika.URLParameters(url(events_broker, "events")))
    assert conn.channel().queue_declare(topic, passive=True).method.message_count == 1
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(in_root, passive=True)
    assert e.value.reply_code == 404
    conn.close()
    reader = StreamReader(url(events_broker, "events"), topic, offset="first")
    assert bodies(reader.take(1)) == ["v"]
    reader.close()

    conn = pika.BlockingConnection(pika.URLParameters(url(events_broker, "/")))
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(topic, passive=True)
    assert e.value.reply_code == 404
    conn.close()
