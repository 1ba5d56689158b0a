"""Retention runs in the background per topic config; DeleteRecords moves the start."""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_util import module_broker, wait_until


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "retention",
                      env={"FERRYMQ_KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS": "200"})
    yield b
    b.stop()


def fill(broker, topic, n, size=200):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for i in range(n):
        p.produce(topic, value=(f"{i}:".encode() + b"x" * size))
        p.poll(0)
    assert p.flush(10) == 0


def watermarks(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def test_time_retention_deletes_old_segments_in_the_background(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    config = {"retention.ms": "1000", "segment.bytes": "2048"}
    a.create_topics([NewTopic("short-lived", 1, 1, config=config)])["short-lived"].result(10)
    fill(broker, "short-lived", 60)
    assert watermarks(broker, "short-lived") == (0, 60)
    lo, hi = wait_until(lambda: (w := watermarks(broker, "short-lived"))[0] > 0 and w,
                        timeout=15, message="retention moved the log start")
    assert hi == 60 and 0 < lo < 60, "the active segment stays"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "late", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("short-lived", 0, 0)])
    first = None
    deadline = time.time() + 10
    while first is None and time.time() < deadline:
        for m in c.consume(1, 1.0):
            if m.error() is None:
                first = m
    c.close()
    assert first is not None and first.offset() >= lo, "an out-of-range offset resets to the earliest"


def test_size_retention_keeps_the_partition_under_its_limit(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    config = {"retention.bytes": "8192", "segment.bytes": "2048"}
    a.create_topics([NewTopic("bounded", 1, 1, config=config)])["bounded"].result(10)
    fill(broker, "bounded", 200)
    lo, hi = wait_until(lambda: (w := watermarks(broker, "bounded"))[0] > 100 and w,
                        timeout=15, message="size retention")
    assert hi == 200


def test_delete_records_moves_the_start_offset(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("trimmed", 1, 1)])["trimmed"].result(10)
    fill(broker, "trimmed", 20, size=10)
    result = a.delete_records([TopicPartition("trimmed", 0, 12)])
    list(result.values())[0].result(10)
    assert watermarks(broker, "trimmed") == (12, 20)
