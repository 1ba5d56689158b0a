"""Definitions survive kill -9 in every vhost: Kafka topics with their ids, partition counts
and configs (as created, as altered), stream queues declared over AMQP with their arguments,
and the durable objects and persistent messages of a second vhost. Users and vhosts come
from the configuration, so the same ones exist after any restart."""

import pika
import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewPartitions, NewTopic

from conftest import get_all

CONFIG = """
[server]
vhosts = ["/", "events"]

[amqp]
users = [
  { name = "guest", password = "guest", vhosts = ["*"], tags = [] },
  { name = "app", password = "secret", vhosts = ["events"], tags = [] },
]
loopback_users = []
"""


def url(broker, vhost, user="guest", password="guest"):
    port = broker.amqp[1]
    return f"amqp://{user}:{password}@127.0.0.1:{port}/{vhost.replace('/', '%2F')}"


def topic_state(admin, topic):
    described = admin.describe_topics(TopicCollection([topic]))[topic].result(10)
    configs = admin.describe_configs([ConfigResource("topic", topic)])
    entries = next(iter(configs.values())).result(10)
    set_here = {name: e.value for name, e in entries.items()
                if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
    return str(described.topic_id), len(described.partitions), set_here


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_topics_stream_queues_and_a_second_vhost_survive(make_broker, tmp_path, crash):
    path = tmp_path / "ferrymq.toml"
    path.write_text(CONFIG)
    broker = make_broker(args=["--config", str(path)])

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    created = admin.create_topics([
        NewTopic("kept-t", 2, 1, config={"retention.ms": "86400000", "flush.ms": "250",
                                         "max.message.bytes": "65536"}),
        NewTopic("gone-t", 1, 1),
    ])
    for f in created.values():
        f.result(10)
    admin.create_partitions([NewPartitions("kept-t", 4)])["kept-t"].result(10)
    altered = admin.alter_configs([ConfigResource("topic", "kept-t", set_config={
        "retention.ms": "3600000", "flush.messages": "1", "max.message.bytes": "65536"})])
    for f in altered.values():
        f.result(10)
    admin.delete_topics(["gone-t"])["gone-t"].result(10)
    before = topic_state(admin, "kept-t")
    assert before[1:] == (4, {"retention.ms": "3600000", "flush.messages": "1",
                              "max.message.bytes": "65536"})

    conn = pika.BlockingConnection(pika.URLParameters(url(broker, "/")))
    ch = conn.channel()
    ch.queue_declare("ledger", durable=True, arguments={
        "x-queue-type": "stream", "x-max-age": "7D", "x-stream-max-segment-size-bytes": 1 << 20})
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", "ledger", b"entry %d" % i, pika.BasicProperties(delivery_mode=2))
    conn.close()

    conn = pika.BlockingConnection(pika.URLParameters(url(broker, "events", "app", "secret")))
    ch = conn.channel()
    ch.exchange_declare("ev-x", "topic", durable=True)
    ch.queue_declare("ev-q", durable=True, arguments={"x-max-length": 1000})
    ch.queue_bind("ev-q", "ev-x", "ev.#")
    ch.confirm_delivery()
    for i in range(7):
        ch.basic_publish("ev-x", "ev.new", b"event %d" % i, pika.BasicProperties(delivery_mode=2))
    conn.close()

    broker.restart(crash=crash)

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert topic_state(admin, "kept-t") == before
    assert "gone-t" not in admin.list_topics(timeout=10).topics

    conn = pika.BlockingConnection(pika.URLParameters(url(broker, "/")))
    ch = conn.channel()
    # Same arguments: equivalent; different ones: 406, so they were kept.
    ch.queue_declare("ledger", durable=True, arguments={
        "x-queue-type": "stream", "x-max-age": "7D", "x-stream-max-segment-size-bytes": 1 << 20})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
        conn.channel().queue_declare("ledger", durable=True, arguments={
            "x-queue-type": "stream", "x-max-age": "1D"})
    assert err.value.reply_code == 406
    ch.basic_qos(prefetch_count=10)
    got = []
    for method, _, body in ch.consume("ledger", arguments={"x-stream-offset": "first"},
                                      inactivity_timeout=10):
        assert method is not None, f"stream gave back {got}"
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(got) == 5:
            break
    assert got == [b"entry %d" % i for i in range(5)]
    conn.close()

    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(pika.URLParameters(url(broker, "/", "app", "secret")))
    conn = pika.BlockingConnection(pika.URLParameters(url(broker, "events", "app", "secret")))
    ch = conn.channel()
    assert ch.queue_declare("ev-q", passive=True).method.message_count == 7
    ch.confirm_delivery()
    ch.basic_publish("ev-x", "ev.more", b"after", pika.BasicProperties(delivery_mode=2))
    bodies = [body for _, _, body in get_all(ch, "ev-q")]
    assert bodies == [b"event %d" % i for i in range(7)] + [b"after"]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
        conn.channel().queue_declare("ev-q", durable=True, arguments={"x-max-length": 5})
    assert err.value.reply_code == 406
    conn.close()
