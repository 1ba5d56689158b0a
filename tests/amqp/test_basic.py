"""basic.*: publish, consume, get, ack/nack/reject, recover, qos, cancel, priorities."""

import threading
import time

import pika
import pytest

from amqp_helpers import unique, wait_until, peer, amqp_url  # noqa: F401 (fixtures)


def drain(ch, queue, n, timeout=10.0, auto_ack=True):
    """Consumes exactly `n` messages (bounded wait) and returns (method, props, body) list."""
    got = []
    for method, props, body in ch.consume(queue, auto_ack=auto_ack, inactivity_timeout=timeout):
        if method is None:
            break
        got.append((method, props, body))
        if len(got) == n:
            break
    ch.cancel()
    return got


def test_publish_consume_roundtrip_with_all_properties(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("props")
    ch.queue_declare(q, auto_delete=True)
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers={"s": "v", "n": 7, "big": 2**40, "b": True, "nested": {"x": [1, "a"]}, "none": None},
        delivery_mode=2,
        priority=3,
        correlation_id="c1",
        reply_to="r1",
        expiration="100000",
        message_id="m1",
        timestamp=1700000000,
        type="t1",
        user_id="guest",
        app_id="a1",
        cluster_id="cl",
    )
    ch.basic_publish("", q, b"payload", props)
    [(method, got, body)] = drain(ch, q, 1)
    assert body == b"payload"
    assert method.routing_key == q and method.exchange == ""
    for field in (
        "content_type", "content_encoding", "headers", "delivery_mode", "priority",
        "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
        "user_id", "app_id", "cluster_id",
    ):
        assert getattr(got, field) == getattr(props, field), field
    conn.close()


def test_get_and_get_empty_with_message_count(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("get")
    ch.queue_declare(q, auto_delete=False)
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    method, _, body = ch.basic_get(q, auto_ack=False)
    assert body == b"0" and method.message_count == 2 and not method.redelivered
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"0" and method.redelivered
    ch.basic_get(q, auto_ack=True)
    ch.basic_get(q, auto_ack=True)
    assert ch.basic_get(q) == (None, None, None)
    ch.queue_delete(q)
    conn.close()


def test_prefetch_limits_unacked_per_consumer(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("qos")
    ch.queue_declare(q, auto_delete=True)
    for i in range(10):
        ch.basic_publish("", q, str(i).encode())
    ch.basic_qos(prefetch_count=3)
    seen = []
    ch.basic_consume(q, lambda c, m, p, b: seen.append(m))
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    conn.process_data_events(time_limit=0.3)
    assert len(seen) == 3, "only prefetch_count deliveries before an ack"
    ch.basic_ack(seen[-1].delivery_tag, multiple=True)
    deadline = time.monotonic() + 5
    while len(seen) < 6 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert len(seen) == 6
    conn.close()


def test_global_qos_is_shared_by_the_channels_consumers(peer):
    conn = peer.connect()
    ch = conn.channel()
    q1, q2 = unique("g1"), unique("g2")
    for q in (q1, q2):
        ch.queue_declare(q, auto_delete=True)
        for i in range(5):
            ch.basic_publish("", q, b"x")
    ch.basic_qos(prefetch_count=4, global_qos=True)
    seen = []
    ch.basic_consume(q1, lambda c, m, p, b: seen.append(m))
    ch.basic_consume(q2, lambda c, m, p, b: seen.append(m))
    assert wait_until(conn, lambda: len(seen) >= 4)
    conn.process_data_events(time_limit=0.3)
    assert len(seen) == 4
    conn.close()


def test_nack_requeue_sets_redelivered_and_reject_drops(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("nack")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    m1, _, _ = ch.basic_get(q)
    m2, _, _ = ch.basic_get(q)
    ch.basic_nack(m2.delivery_tag, multiple=True, requeue=True)
    m, _, b = ch.basic_get(q, auto_ack=False)
    assert (b, m.redelivered) == (b"a", True), "requeued in original order"
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, _, b = ch.basic_get(q, auto_ack=True)
    assert (b, m.redelivered) == (b"b", True)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch.queue_delete(q)
    conn.close()


def test_recover_requeues_unacked(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("recover")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_publish("", q, b"a")
    m, _, _ = ch.basic_get(q)
    ch.basic_recover(requeue=True)
    m, _, b = ch.basic_get(q, auto_ack=True)
    assert b == b"a" and m.redelivered
    ch.queue_delete(q)
    conn.close()


def test_closing_a_channel_requeues_its_unacked_messages(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("close-requeue")
    ch.queue_declare(q, auto_delete=False)
    for b in (b"1", b"2"):
        ch.basic_publish("", q, b)
    ch2 = conn.channel()
    ch2.basic_get(q)
    ch2.basic_get(q)
    ch2.close()
    got = [ch.basic_get(q, auto_ack=True) for _ in range(2)]
    assert [(b, m.redelivered) for m, _, b in got] == [(b"1", True), (b"2", True)]
    ch.queue_delete(q)
    conn.close()


def test_unknown_delivery_tag_is_406(peer):
    conn = peer.connect()
    ch = conn.channel()
    ch.basic_ack(999)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(unique("after"), auto_delete=True)
    assert e.value.reply_code == 406
    assert "unknown delivery tag 999" in e.value.reply_text
    conn.close()


def test_round_robin_between_consumers(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("rr")
    ch.queue_declare(q, auto_delete=True)
    a, b = [], []
    ch.basic_consume(q, lambda c, m, p, body: a.append(body), auto_ack=True)
    ch.basic_consume(q, lambda c, m, p, body: b.append(body), auto_ack=True)
    for i in range(10):
        ch.basic_publish("", q, str(i).encode())
    deadline = time.monotonic() + 5
    while len(a) + len(b) < 10 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert len(a) == 5 and len(b) == 5
    conn.close()


def test_consumer_priorities(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("cprio")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_qos(prefetch_count=2)
    low, high = [], []
    ch.basic_consume(q, lambda c, m, p, body: low.append(m), arguments={"x-priority": 1})
    ch.basic_consume(q, lambda c, m, p, body: high.append(m), arguments={"x-priority": 10})
    for i in range(3):
        ch.basic_publish("", q, b"x")
    assert wait_until(conn, lambda: len(high) + len(low) == 3)
    assert len(high) == 2 and len(low) == 1, "high priority first, low only when high is full"
    conn.close()


def test_message_priorities(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("mprio")
    ch.queue_declare(q, auto_delete=False, arguments={"x-max-priority": 10})
    for body, prio in [(b"low", 1), (b"high", 9), (b"none", None), (b"max", 200)]:
        ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
    bodies = [ch.basic_get(q, auto_ack=True)[2] for _ in range(4)]
    assert bodies == [b"max", b"high", b"low", b"none"]
    ch.queue_delete(q)
    conn.close()


def test_exclusive_consumer_and_consumer_tags(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("excl")
    ch.queue_declare(q, auto_delete=True)
    tag = ch.basic_consume(q, lambda *a: None, exclusive=True, consumer_tag="mine")
    assert tag == "mine"
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch2.basic_consume(q, lambda *a: None)
    assert e.value.reply_code == 403
    ch3 = conn.channel()
    generated = ch3.basic_consume(ch3.queue_declare(unique("gen"), auto_delete=True).method.queue, lambda *a: None)
    assert generated.startswith("ctag") or generated.startswith("amq.ctag")
    conn.close()


def test_reused_consumer_tag_is_530(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("dup-tag")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None, consumer_tag="same")
    # pika refuses a duplicate tag itself; send the method frame directly.
    ch._impl._send_method(pika.spec.Basic.Consume(queue=q, consumer_tag="same"))
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        conn.process_data_events(time_limit=2)
        ch.queue_declare(unique("never"))
    assert e.value.reply_code == 530


def test_broker_cancels_consumers_of_a_deleted_queue(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("cancel-notify")
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    other = conn.channel()
    other.queue_delete(q)
    deadline = time.monotonic() + 5
    while not cancelled and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert cancelled == [tag]
    conn.close()


def test_immediate_is_540_connection_error(peer):
    conn = peer.connect()
    ch = conn.channel()
    # pika has no `immediate` argument; send the method frame ourselves.
    ch._impl._send_method(
        pika.spec.Basic.Publish(exchange="", routing_key="x", immediate=True),
        (pika.BasicProperties(), b"body"),
    )
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        conn.process_data_events(time_limit=2)
        ch.queue_declare(unique("never"))
    assert e.value.reply_code == 540


def test_slow_consumer_does_not_stall_other_queues(amqp_url):
    """A consumer that never acks (and never reads) holds only its own queue's messages."""
    from amqp_helpers import connect

    slow = connect(amqp_url)
    sch = slow.channel()
    q_slow, q_fast = unique("slow"), unique("fast")
    sch.queue_declare(q_slow, auto_delete=True)
    sch.basic_consume(q_slow, lambda *a: None)  # never acks, never processes events again

    fast = connect(amqp_url)
    fch = fast.channel()
    fch.queue_declare(q_fast, auto_delete=True)
    pub = connect(amqp_url)
    pch = pub.channel()
    for i in range(2000):
        pch.basic_publish("", q_slow, b"x" * 1024)
        pch.basic_publish("", q_fast, str(i).encode())
    got = drain(fch, q_fast, 2000, timeout=20)
    assert len(got) == 2000
    for c in (pub, fast, slow):
        c.close()


def test_consumer_timeout_closes_the_channel_with_406(make_broker):
    """RabbitMQ's consumer_timeout: an unacknowledged delivery older than the limit closes
    its channel (default 30 minutes; here 500 ms)."""
    from amqp_helpers import connect

    b = make_broker(env={"FERRYMQ_AMQP_CONSUMER_TIMEOUT": "500"})
    conn = connect(b.amqp_url)
    ch = conn.channel()
    ch.queue_declare("slow-ack")
    ch.basic_publish("", "slow-ack", b"x")
    closed = []
    ch._impl.add_on_close_callback(lambda c, reason: closed.append(reason))
    ch.basic_get("slow-ack")  # never acked
    started = time.monotonic()
    assert wait_until(conn, lambda: closed, timeout=5)
    assert time.monotonic() - started >= 0.4
    reason = closed[0]
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    assert reason.reply_code == 406 and "delivery acknowledgement" in reason.reply_text
    # The message went back to the queue.
    ch2 = conn.channel()
    m, _, body = ch2.basic_get("slow-ack", auto_ack=True)
    assert body == b"x" and m.redelivered
    conn.close()


def test_recover_without_requeue_is_not_implemented(peer):
    conn = peer.connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_recover(requeue=False)
    assert e.value.reply_code == 540 and "requeue=false" in e.value.reply_text


def test_prefetch_size_is_not_implemented(peer):
    conn = peer.connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_qos(prefetch_size=1024)
    assert e.value.reply_code == 540


def test_multiple_ack_needs_its_own_tag_outstanding(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("multi-ack")
    ch.queue_declare(q, auto_delete=False)
    ch.confirm_delivery()
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_ack(tags[2])
    ch.basic_ack(tags[2], multiple=True)  # already acked: unknown, even though 1 and 2 wait
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert e.value.reply_code == 406
    ch = conn.channel()
    m, _, b = ch.basic_get(q, auto_ack=True)
    assert b == b"1" and m.redelivered, "nothing was acked by the failed multiple ack"
    ch.queue_delete(q)
    conn.close()
