"""Hostile and broken requests on the real binary: each gets an error response or its
connection closed (and logged); the broker and every other connection carry on."""

import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafka_util import module_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "robust", env={"FERRYMQ_KAFKA_MAX_REQUEST_BYTES": "65536"})
    yield b
    b.stop()


def raw(broker, payload, expect_close=True, half_close=False):
    s = socket.create_connection(("127.0.0.1", broker.kafka[1]), timeout=5)
    try:
        s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return data, False
            if not chunk:
                return data, True
            data += chunk
            if not expect_close:
                return data, False
    finally:
        s.close()


def frame(body):
    return struct.pack(">i", len(body)) + body


def test_broken_requests_never_disturb_a_working_client(broker):
    stop = threading.Event()
    errors, produced = [], []

    def keep_producing():
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1, "acks": "all"})
        i = 0
        while not stop.is_set():
            p.produce("robust", value=str(i), on_delivery=lambda e, m: errors.append(e) if e else produced.append(m))
            p.poll(0.001)
            i += 1
            time.sleep(0.001)
        p.flush(10)

    worker = threading.Thread(target=keep_producing, daemon=True)
    worker.start()
    time.sleep(0.5)

    # 1. A size prefix above the limit: closed before any body is read (the body never comes).
    assert raw(broker, struct.pack(">i", 1 << 30)) == (b"", True)
    # 2. A negative size.
    assert raw(broker, struct.pack(">i", -5)) == (b"", True)
    # 3. An unknown API key.
    assert raw(broker, frame(struct.pack(">hhi", 999, 0, 1) + b"\x00\x00")) == (b"", True)
    # 4. Metadata v0 claiming two billion topics in a 4-byte body.
    assert raw(broker, frame(struct.pack(">hhih", 3, 0, 2, -1) + b"\x7f\xff\xff\xff")) == (b"", True)
    # 5. A truncated Heartbeat gets INVALID_REQUEST (42) in its own response.
    body = struct.pack(">hhih", 12, 0, 77, -1) + b"\x00\x09g"
    data, _ = raw(broker, frame(body), expect_close=False)
    assert struct.unpack(">iih", data[:10]) == (6, 77, 42)
    # 6. Random garbage of every small size.
    for n in range(1, 40):
        data, closed = raw(broker, bytes((i * 37 + n) % 256 for i in range(n)), half_close=True)
        assert closed
    # 7. ApiVersions newer than the broker's: v0 body, UNSUPPORTED_VERSION, then the ranges.
    body = struct.pack(">hhih", 18, 42, 5, -1) + b"\x00"
    data, _ = raw(broker, frame(body), expect_close=False)
    size, correlation, error = struct.unpack(">iih", data[:10])
    assert (correlation, error) == (5, 35)

    time.sleep(0.5)
    stop.set()
    worker.join(15)
    assert errors == [], errors
    assert len(produced) > 50, "the producer kept working throughout"
    for pattern in ["exceeds the maximum of 65536 bytes", "negative request size",
                    "unknown API key 999", "claims 2147483647 elements"]:
        broker.wait_for_log(pattern)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check"})
    lo, hi = c.get_watermark_offsets(TopicPartition("robust", 0), timeout=10)
    c.close()
    assert hi == len(produced)
