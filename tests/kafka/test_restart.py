"""What a Kafka client relies on survives restarts: topics with their ids and configs, the
records acknowledged with acks=all (also through SIGKILL), committed offsets and groups."""

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from kafka_util import FAST_GROUPS


def describe_id(admin, topic):
    described = admin.describe_topics(TopicCollection([topic]))[topic].result(10)
    return str(described.topic_id)


def make(make_broker):
    return make_broker(env=FAST_GROUPS)


def produce(broker, topic, n, start=0):
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2})
    acked = []
    for i in range(start, start + n):
        p.produce(topic, key=str(i % 4), value=str(i),
                  on_delivery=lambda err, msg: None if err else acked.append(int(msg.value())))
    assert p.flush(30) == 0
    return acked


def read_all(broker, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                  "enable.auto.commit": False})
    hi = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    while len(got) < hi:
        got.extend(int(m.value()) for m in c.consume(1000, 1.0) if m.error() is None)
    c.close()
    return sorted(got)


def test_topics_records_offsets_and_groups_survive_a_clean_restart(make_broker):
    broker = make(make_broker)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("kept", 3, 1, config={"retention.ms": "123456789"})])["kept"].result(10)
    topic_id = describe_id(a, "kept")
    acked = produce(broker, "kept", 500)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "keepers",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["kept"])
    seen = 0
    while seen < 300:
        seen += len(c.consume(300 - seen, 1.0))
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition("kept", p) for p in range(3)], timeout=10)}
    c.close()

    broker.restart()

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = a.list_topics(timeout=10).topics["kept"]
    assert len(md.partitions) == 3
    assert describe_id(a, "kept") == topic_id, "the topic keeps its id"
    entries = list(a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "kept")]).values())[0].result(10)
    assert entries["retention.ms"].value == "123456789"
    assert read_all(broker, "kept", 3) == sorted(acked)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "keepers"})
    after = {tp.partition: tp.offset for tp in c.committed([TopicPartition("kept", p) for p in range(3)], timeout=10)}
    c.close()
    assert after == committed
    assert sum(o for o in after.values() if o >= 0) == 300
    groups = [g.group_id for g in a.list_consumer_groups().result(10).valid]
    assert "keepers" in groups


def test_records_acknowledged_with_acks_all_survive_sigkill(make_broker):
    broker = make(make_broker)
    acked = produce(broker, "crashy", 2000)
    assert len(acked) == 2000
    broker.restart(crash=True)
    more = produce(broker, "crashy", 100, start=2000)
    assert read_all(broker, "crashy", 1) == sorted(acked + more)
