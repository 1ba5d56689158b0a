"""confluent-kafka (librdkafka 2.16): admin, idempotent producer, consumer groups, seeks."""

import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from kafka_util import module_broker, wait_until


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "confluent")
    yield b
    b.stop()


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def producer(broker, **conf):
    return Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **conf})


def consumer(broker, group, **conf):
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        **conf,
    })


def produce_all(p, topic, items):
    errors = []
    for key, value in items:
        while True:
            try:
                p.produce(topic, key=key, value=value,
                          on_delivery=lambda err, msg: errors.append(err) if err else None)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(30) == 0
    assert errors == []


def create(broker, topic, partitions=1, config=None):
    a = admin(broker)  # kept alive until the result arrives
    futures = a.create_topics([NewTopic(topic, partitions, 1, config=config or {})])
    futures[topic].result(10)


def test_admin_creates_a_6_partition_topic_with_configs_and_describes_it(broker):
    a = admin(broker)
    config = {"retention.ms": "86400000", "max.message.bytes": "2000000", "cleanup.policy": "delete"}
    a.create_topics([NewTopic("orders", 6, 1, config=config)])["orders"].result(10)
    md = a.list_topics(timeout=10)
    assert "orders" in md.topics
    assert len(md.topics["orders"].partitions) == 6
    assert md.brokers[0].port == broker.kafka[1]

    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "orders")])
    entries = list(res.values())[0].result(10)
    assert entries["retention.ms"].value == "86400000"
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not entries["retention.ms"].is_default
    assert entries["segment.bytes"].is_default
    assert entries["message.timestamp.type"].value == "CreateTime"
    assert len(entries) >= 30, sorted(entries)

    broker_cfg = a.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "0")])
    entries = list(broker_cfg.values())[0].result(10)
    assert entries["num.partitions"].value == "1"
    assert entries["auto.create.topics.enable"].value == "true"

    with pytest.raises(KafkaException) as exc:
        a.create_topics([NewTopic("orders", 1, 1)])["orders"].result(10)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_admin_validate_only_invalid_configs_partitions_and_delete(broker):
    a = admin(broker)
    a.create_topics([NewTopic("dry", 2, 1)], validate_only=True)["dry"].result(10)
    assert "dry" not in a.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as exc:
        a.create_topics([NewTopic("bad-config", 1, 1, config={"retention.ms": "soon"})])["bad-config"].result(10)
    assert exc.value.args[0].code() == KafkaError.INVALID_CONFIG
    with pytest.raises(KafkaException) as exc:
        a.create_topics([NewTopic("bad-rf", 1, 3)])["bad-rf"].result(10)
    assert exc.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR

    create(broker, "grow", 2)
    a.create_partitions([NewPartitions("grow", 5)])["grow"].result(10)
    assert len(a.list_topics(timeout=10).topics["grow"].partitions) == 5

    resource = ConfigResource(ConfigResource.Type.TOPIC, "grow", incremental_configs=[
        ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
    ])
    a.incremental_alter_configs([resource])[resource].result(10)
    entries = list(a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "grow")]).values())[0].result(10)
    assert entries["retention.bytes"].value == "1048576"

    a.delete_topics(["grow"])["grow"].result(10)
    wait_until(lambda: "grow" not in a.list_topics(timeout=10).topics, message="topic deleted")


def test_idempotent_lz4_producer_and_a_3_member_group_read_30000_records_exactly_once(broker):
    topic, group = "events", "three"
    create(broker, topic, 6)
    assignments = {}
    lock = threading.Lock()
    seen = defaultdict(list)
    stop = threading.Event()
    expected = 30_000

    def member(name):
        c = consumer(broker, group, **{"enable.auto.commit": False})
        c.subscribe([topic], on_assign=lambda _c, parts: assignments.__setitem__(name, [p.partition for p in parts]))
        try:
            while not stop.is_set():
                msgs = c.consume(500, 0.2)
                for m in msgs:
                    assert m.error() is None, m.error()
                    with lock:
                        seen[m.key()].append((int(m.value()), m.partition(), m.offset(), name))
                if msgs:
                    c.commit(asynchronous=False)
        finally:
            c.close()

    threads = [threading.Thread(target=member, args=(f"m{i}",), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: len(assignments) == 3 and sum(map(len, assignments.values())) == 6,
               timeout=30, message="3 members share the 6 partitions")
    assert sorted(p for parts in assignments.values() for p in parts) == list(range(6))

    p = producer(broker, **{"enable.idempotence": True, "compression.type": "lz4", "acks": "all"})
    produce_all(p, topic, ((f"key-{i % 97}", str(i)) for i in range(expected)))

    wait_until(lambda: sum(map(len, seen.values())) >= expected, timeout=60, message="all records consumed")
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    records = [r for rs in seen.values() for r in rs]
    assert len(records) == expected, "every record exactly once"
    assert sorted(r[0] for r in records) == list(range(expected))
    for key, rs in seen.items():
        values = [r[0] for r in rs]
        assert values == sorted(values), f"per-key order broken for {key}"
        assert len({r[1] for r in rs}) == 1, "a key stays in one partition"
    assert len({r[3] for r in records}) == 3, "all three members consumed"


def test_a_restarted_member_resumes_at_its_committed_offsets(broker):
    topic, group = "resume", "resumers"
    create(broker, topic, 1)
    produce_all(producer(broker), topic, ((None, f"r{i}") for i in range(100)))
    c = consumer(broker, group, **{"enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    while len(got) < 40:
        for m in c.consume(40 - len(got), 1.0):
            got.append(m.value().decode())
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    c.close()
    assert committed == 40 and got == [f"r{i}" for i in range(40)]

    again = consumer(broker, group)
    again.subscribe([topic])
    first = None
    while first is None:
        for m in again.consume(1, 1.0):
            first = m
    assert (first.offset(), first.value()) == (40, b"r40")
    again.close()


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_each_compression_codec_round_trips(broker, codec):
    topic = f"codec-{codec}"
    create(broker, topic, 1)
    values = [f"{codec}-{i}-".encode() * (i % 7 + 1) for i in range(500)]
    p = producer(broker, **{"compression.type": codec})
    produce_all(p, topic, ((str(i), v) for i, v in enumerate(values)))
    c = consumer(broker, f"g-{codec}")
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < len(values):
        got.extend(m.value() for m in c.consume(500, 1.0))
    c.close()
    assert got == values


def test_watermarks_and_seeks_by_offset_and_by_timestamp(broker):
    topic = "seeks"
    create(broker, topic, 1)
    p = producer(broker, **{"linger.ms": 0})
    base = int(time.time() * 1000) - 100_000
    for i in range(100):
        p.produce(topic, value=f"s{i}", timestamp=base + i * 1000)
        if i % 10 == 9:
            p.flush(10)
    p.flush(10)
    c = consumer(broker, "seeker")
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (lo, hi) == (0, 100)

    c.assign([TopicPartition(topic, 0, 0)])
    c.seek(TopicPartition(topic, 0, 42))
    first = None
    while first is None:
        for m in c.consume(1, 1.0):
            first = m
    assert (first.offset(), first.value()) == (42, b"s42")

    found = c.offsets_for_times([TopicPartition(topic, 0, base + 73_500)], timeout=10)[0]
    assert found.offset == 74
    c.seek(found)
    m = None
    while m is None:
        for got in c.consume(1, 1.0):
            m = got
    assert m.value() == b"s74" and m.timestamp()[1] == base + 74_000
    beyond = c.offsets_for_times([TopicPartition(topic, 0, base + 10_000_000)], timeout=10)[0]
    assert beyond.offset == -1
    c.close()


def test_log_append_time_topics_stamp_records_with_the_broker_clock(broker):
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
    create(broker, "appended", 1, {"message.timestamp.type": "LogAppendTime"})
    create(broker, "created", 1)
    for topic in ("appended", "created"):
        p = producer(broker)
        p.produce(topic, value=b"old", timestamp=1_000_000_000_000)
        assert p.flush(10) == 0
    before = int(time.time() * 1000) - 60_000
    c = consumer(broker, "stamps")
    c.assign([TopicPartition("appended", 0, 0), TopicPartition("created", 0, 0)])
    stamps = {}
    while len(stamps) < 2:
        for m in c.consume(10, 1.0):
            stamps[m.topic()] = m.timestamp()
    c.close()
    kind, ts = stamps["appended"]
    assert kind == TIMESTAMP_LOG_APPEND_TIME and ts >= before
    assert stamps["created"] == (TIMESTAMP_CREATE_TIME, 1_000_000_000_000)
