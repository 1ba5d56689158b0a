"""Resource alarms: the memory watermark and the disk free limit push back on publishers
(AMQP connection.blocked, Kafka throttling and retriable errors) while consumers drain, and
nothing confirmed is lost.

The watermarks are set just above what the broker uses when idle (measured from a first
broker), so a few tens of MiB of queued messages cross them; the disk alarm is raised by a
ballast file on the data dir's file system, as any other writer there would.
"""

import asyncio
import logging
import os
import time

import aio_pika
import pika
import pytest
from confluent_kafka import Consumer, Producer

from conftest import api_get, wait_until

MIB = 1024 * 1024
BODY = b"m" * MIB


def node(broker):
    status, nodes = api_get(broker, "/api/nodes")
    assert status == 200
    return nodes[0]


@pytest.fixture
def idle_memory(make_broker):
    """What an idle broker's allocator holds (the monitor samples it every 100 ms)."""
    probe = make_broker(name="probe")
    used = wait_until(lambda: node(probe)["mem_used"], message="a memory reading")
    probe.stop()
    return used


def low_watermark_broker(make_broker, idle_memory, headroom=24 * MIB):
    env = {"FERRYMQ_RESOURCES_MEMORY_HIGH_WATERMARK": str(idle_memory + headroom)}
    b = make_broker(env=env)
    assert node(b)["mem_limit"] == idle_memory + headroom
    return b


def connect(broker, **params):
    p = pika.URLParameters(broker.amqp_url)
    for k, v in params.items():
        setattr(p, k, v)
    return pika.BlockingConnection(p)


def pump(conn, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        conn.process_data_events(time_limit=0.05)


def fill_until_blocked(conn, ch, queue, events, limit=200):
    """Publishes 1 MiB messages (without confirms: a publish the broker has stopped reading
    is never confirmed until the alarm clears) until the connection is blocked."""
    sent = 0
    while not events:
        ch.basic_publish("", queue, BODY + sent.to_bytes(4, "big"))
        sent += 1
        conn.process_data_events(time_limit=0.01)
        assert sent < limit, f"no connection.blocked after {limit} MiB"
    return sent


def test_memory_alarm_blocks_publishers_while_a_consumer_drains(make_broker, idle_memory):
    b = low_watermark_broker(make_broker, idle_memory)
    events = []
    publisher = connect(b, blocked_connection_timeout=60)
    publisher.add_on_connection_blocked_callback(
        lambda _c, frame: events.append(("blocked", frame.method.reason)))
    publisher.add_on_connection_unblocked_callback(lambda _c, _f: events.append(("unblocked", "")))
    ch = publisher.channel()
    ch.queue_declare("backlog")
    sent = fill_until_blocked(publisher, ch, "backlog", events)
    assert events == [("blocked", "low on memory")]
    assert wait_until(lambda: node(b)["mem_alarm"], message="mem_alarm in /api/nodes")
    status, body = api_get(b, "/api/health/checks/alarms")
    assert status == 503 and body["status"] == "failed"
    assert [a["resource"] for a in body["alarms"]] == ["memory"]
    b.wait_for_log("memory alarm set")
    # The consumer is another connection: it keeps flowing and drains the queue.
    consumer = connect(b)
    cch = consumer.channel()
    cch.basic_qos(prefetch_count=10)
    got = []
    cch.basic_consume("backlog", lambda c, m, p, body: (got.append(body), c.basic_ack(m.delivery_tag)))
    pump(consumer, lambda: len(got) == sent, timeout=60)
    pump(publisher, lambda: events[-1][0] == "unblocked")
    b.wait_for_log("memory alarm cleared")
    assert api_get(b, "/api/health/checks/alarms")[0] == 200
    ch.confirm_delivery()
    ch.basic_publish("", "backlog", b"after")
    pump(consumer, lambda: len(got) == sent + 1)
    assert got == [BODY + i.to_bytes(4, "big") for i in range(sent)] + [b"after"]
    publisher.close()
    consumer.close()


def test_a_connection_that_only_consumes_is_never_blocked(make_broker, idle_memory):
    b = low_watermark_broker(make_broker, idle_memory)
    consumer = connect(b)
    consumed = []
    consumer.add_on_connection_blocked_callback(lambda *_: consumed.append("blocked"))
    cch = consumer.channel()
    cch.queue_declare("q")
    publisher = connect(b, blocked_connection_timeout=60)
    blocked = []
    publisher.add_on_connection_blocked_callback(lambda *_: blocked.append(1))
    fill_until_blocked(publisher, publisher.channel(), "q", blocked)
    # Under the alarm the consumer's connection still declares, gets and acks.
    cch.queue_declare("q2")
    method, _, body = cch.basic_get("q")
    assert body == BODY + (0).to_bytes(4, "big")
    cch.basic_ack(method.delivery_tag)
    assert "blocked" not in consumed
    cch.queue_purge("q")
    pump(publisher, lambda: not node(b)["mem_alarm"])
    publisher.close()
    consumer.close()


def test_aio_pika_is_blocked_and_its_confirms_wait_for_unblocked(make_broker, idle_memory, caplog):
    b = low_watermark_broker(make_broker, idle_memory)

    async def scenario():
        connection = await aio_pika.connect(b.amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("aio-q")
        await channel.default_exchange.publish(aio_pika.Message(b"first"), routing_key="aio-q")
        # Another connection fills memory; every connection that has published is blocked.
        ballast = await asyncio.to_thread(connect, b, blocked_connection_timeout=60)
        events = []
        ballast.add_on_connection_blocked_callback(lambda *_: events.append(1))
        bch = await asyncio.to_thread(ballast.channel)
        bch.queue_declare("aio-ballast")
        await asyncio.to_thread(fill_until_blocked, ballast, bch, "aio-ballast", events)
        for _ in range(200):
            if "was blocked by" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "'low on memory'" in caplog.text, caplog.text
        late = asyncio.ensure_future(
            channel.default_exchange.publish(aio_pika.Message(b"late"), routing_key="aio-q"))
        done, _ = await asyncio.wait([late], timeout=0.5)
        assert not done, "confirmed while blocked"
        other = await aio_pika.connect(b.amqp_url)
        other_channel = await other.channel()
        await (await other_channel.get_queue("aio-ballast")).purge()
        await asyncio.wait_for(late, 30)
        assert "was unblocked" in caplog.text
        bodies = []
        for _ in range(2):
            message = await queue.get(timeout=10)
            bodies.append(message.body)
            await message.ack()
        assert bodies == [b"first", b"late"]
        await other.close()
        await connection.close()
        await asyncio.to_thread(ballast.close)

    with caplog.at_level(logging.WARNING, logger="aiormq.connection"):
        asyncio.run(asyncio.wait_for(scenario(), 90))


def test_kafka_produce_is_throttled_under_the_memory_alarm_and_nothing_is_lost(make_broker, idle_memory):
    b = low_watermark_broker(make_broker, idle_memory)
    publisher = connect(b, blocked_connection_timeout=60)
    blocked = []
    publisher.add_on_connection_blocked_callback(lambda *_: blocked.append(1))
    ch = publisher.channel()
    ch.queue_declare("ballast")
    fill_until_blocked(publisher, ch, "ballast", blocked)
    throttles = []
    delivered = []
    producer = Producer({
        "bootstrap.servers": b.bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        "throttle_cb": lambda event: throttles.append(event.throttle_time),
    })
    for i in range(500):
        producer.produce("throttled", key=str(i), value=f"record-{i}",
                         on_delivery=lambda err, msg: delivered.append((err, msg.value())))
    # Held by the broker: nothing is acknowledged while the alarm lasts.
    producer.poll(1.0)
    assert delivered == []
    drainer = connect(b)
    drainer.channel().queue_purge("ballast")
    assert producer.flush(30) == 0
    assert [err for err, _ in delivered if err is not None] == []
    assert sorted(v for _, v in delivered) == sorted(f"record-{i}".encode() for i in range(500))
    producer.poll(0.5)
    assert throttles and max(throttles) > 0, throttles
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["throttled"])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 500 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            seen.append(m.value())
    consumer.close()
    assert seen == [f"record-{i}".encode() for i in range(500)]
    publisher.close()
    drainer.close()


def test_disk_alarm_blocks_amqp_and_kafka_until_space_is_freed(make_broker, tmp_path):
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    # Raised once 32 MiB more of the file system is used; the ballast takes 64 MiB.
    limit = free - 32 * MIB
    b = make_broker(env={"FERRYMQ_RESOURCES_DISK_FREE_LIMIT": str(limit)})
    assert node(b)["disk_free_limit"] == limit
    assert not node(b)["disk_free_alarm"]
    publisher = connect(b, blocked_connection_timeout=60)
    events = []
    publisher.add_on_connection_blocked_callback(
        lambda _c, frame: events.append(("blocked", frame.method.reason)))
    publisher.add_on_connection_unblocked_callback(lambda _c, _f: events.append(("unblocked", "")))
    ch = publisher.channel()
    unconfirmed = publisher.channel()  # opened now: a blocked connection answers nothing
    ch.confirm_delivery()
    ch.queue_declare("durable-q", durable=True)
    ch.basic_publish("", "durable-q", b"before", pika.BasicProperties(delivery_mode=2))

    ballast = tmp_path / "ballast"
    with open(ballast, "wb") as f:
        for _ in range(64):
            f.write(BODY)
        f.flush()
        os.fsync(f.fileno())
    try:
        wait_until(lambda: node(b)["disk_free_alarm"], timeout=10, message="disk alarm")
        b.wait_for_log("disk alarm set")
        status, body = api_get(b, "/api/health/checks/alarms")
        assert status == 503 and [a["resource"] for a in body["alarms"]] == ["disk"]
        pump(publisher, lambda: events)
        assert events == [("blocked", "low on disk")]
        # Sent, not read: it waits in the socket until the alarm clears.
        unconfirmed.basic_publish("", "durable-q", b"during", pika.BasicProperties(delivery_mode=2))
        delivered = []
        producer = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True,
                             "retry.backoff.ms": 50})
        for i in range(100):
            producer.produce("on-disk", value=f"v{i}", on_delivery=lambda e, m: delivered.append(e))
        producer.poll(1.0)
        assert delivered == [], "produced while the disk alarm was in effect"
    finally:
        ballast.unlink()
    pump(publisher, lambda: events[-1][0] == "unblocked", timeout=20)
    assert producer.flush(30) == 0
    assert delivered == [None] * 100
    got = []
    for _ in range(2):
        method, _, body = ch.basic_get("durable-q", auto_ack=True)
        got.append(body)
    assert got == [b"before", b"during"]
    publisher.close()
