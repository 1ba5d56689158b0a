"""Dead-lettering (rejected, expired, maxlen) with x-death, TTLs, DLX chains."""

import time

import pika

from amqp_helpers import unique, wait_until, peer, amqp_url  # noqa: F401 (fixtures)


def get(ch, q, timeout=10.0):
    """Polls basic.get until a message arrives (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m, p, b = ch.basic_get(q, auto_ack=True)
        if m is not None:
            return m, p, b
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived in {q} within {timeout}s")


def setup_dlx(ch, **args):
    dlx, dlq, src = unique("dlx"), unique("dlq"), unique("src")
    ch.exchange_declare(dlx, "direct")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx, "dead")
    arguments = {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead", **args}
    ch.queue_declare(src, arguments=arguments)
    return dlx, dlq, src


def cleanup(ch, dlx, dlq, src):
    ch.queue_delete(src)
    ch.queue_delete(dlq)
    ch.exchange_delete(dlx)


def check_death(headers, reason, queue, exchange, routing_keys, count=1):
    death = headers["x-death"][0]
    assert death["reason"] == reason
    assert death["queue"] == queue
    assert death["exchange"] == exchange
    assert death["routing-keys"] == routing_keys
    assert death["count"] == count
    assert isinstance(death["time"], __import__("datetime").datetime)
    assert headers["x-first-death-reason"] == headers["x-death"][-1]["reason"]
    assert headers["x-first-death-queue"] == headers["x-death"][-1]["queue"]


def test_rejected_messages_are_dead_lettered_with_x_death(peer):
    conn = peer.connect()
    ch = conn.channel()
    dlx, dlq, src = setup_dlx(ch)
    ch.basic_publish("", src, b"bad", pika.BasicProperties(headers={"keep": "me"}))
    m, _, _ = ch.basic_get(src)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get(ch, dlq)
    assert b == b"bad" and m.exchange == dlx and m.routing_key == "dead"
    assert p.headers["keep"] == "me"
    check_death(p.headers, "rejected", src, "", [src])
    assert p.headers["x-first-death-exchange"] == ""
    cleanup(ch, dlx, dlq, src)
    conn.close()


def test_nack_multiple_dead_letters_each(peer):
    conn = peer.connect()
    ch = conn.channel()
    dlx, dlq, src = setup_dlx(ch)
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", src, b)
    tags = [ch.basic_get(src)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    assert [get(ch, dlq)[2] for _ in range(3)] == [b"1", b"2", b"3"]
    cleanup(ch, dlx, dlq, src)
    conn.close()


def test_queue_ttl_expires_to_dlx_and_never_delivers(peer):
    conn = peer.connect()
    ch = conn.channel()
    dlx, dlq, src = setup_dlx(ch, **{"x-message-ttl": 200})
    ch.basic_publish("", src, b"stale")
    m, p, b = get(ch, dlq)
    assert b == b"stale"
    check_death(p.headers, "expired", src, "", [src])
    assert ch.basic_get(src) == (None, None, None)
    cleanup(ch, dlx, dlq, src)
    conn.close()


def test_per_message_expiration_records_original_expiration(peer):
    conn = peer.connect()
    ch = conn.channel()
    dlx, dlq, src = setup_dlx(ch)
    ch.basic_publish("", src, b"short", pika.BasicProperties(expiration="150"))
    m, p, b = get(ch, dlq)
    assert p.expiration is None
    death = p.headers["x-death"][0]
    assert death["reason"] == "expired" and death["original-expiration"] == "150"
    cleanup(ch, dlx, dlq, src)
    conn.close()


def test_expired_message_is_never_delivered_to_a_late_consumer(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("ttl-only")
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    ch.basic_publish("", q, b"x")
    time.sleep(0.4)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    conn.process_data_events(time_limit=0.3)
    assert got == []
    ch.queue_delete(q)
    conn.close()


def test_maxlen_dead_letters_the_head(peer):
    conn = peer.connect()
    ch = conn.channel()
    dlx, dlq, src = setup_dlx(ch, **{"x-max-length": 1})
    ch.basic_publish("", src, b"first")
    ch.basic_publish("", src, b"second")
    m, p, b = get(ch, dlq)
    assert b == b"first"
    check_death(p.headers, "maxlen", src, "", [src])
    cleanup(ch, dlx, dlq, src)
    conn.close()


def test_dlx_chain_counts_deaths_per_queue_and_reason(peer):
    """Delayed retry as Celery/kombu users build it: a TTL queue dead-letters back to the
    work queue; each round trip adds to x-death."""
    conn = peer.connect()
    ch = conn.channel()
    work, retry = unique("work"), unique("retry")
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": retry})
    ch.queue_declare(
        retry,
        arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work},
    )
    ch.basic_publish("", work, b"job", pika.BasicProperties(headers={"attempt": 0}))
    for round_ in range(1, 4):
        m, _, _ = get_unacked(ch, work)
        ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get(ch, work)
    deaths = {(d["queue"], d["reason"]): d["count"] for d in p.headers["x-death"]}
    assert deaths == {(work, "rejected"): 3, (retry, "expired"): 3}
    assert p.headers["x-death"][0]["queue"] == retry, "most recent death first"
    assert p.headers["x-first-death-queue"] == work
    assert p.headers["x-first-death-reason"] == "rejected"
    ch.queue_delete(work)
    ch.queue_delete(retry)
    conn.close()


def get_unacked(ch, q, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m, p, b = ch.basic_get(q, auto_ack=False)
        if m is not None:
            return m, p, b
        time.sleep(0.02)
    raise AssertionError(f"nothing in {q}")


def test_automatic_dead_letter_cycles_are_dropped(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("cycle")
    # Expired messages dead-letter back into the same queue: RabbitMQ drops them.
    ch.queue_declare(
        q, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": q}
    )
    ch.basic_publish("", q, b"round")
    time.sleep(0.5)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch.queue_delete(q)
    conn.close()


def test_x_last_death_headers(amqp_url):
    """RabbitMQ 3.13 adds x-last-death-*; ferrymq follows it (3.10 lacks them)."""
    from amqp_helpers import connect

    conn = connect(amqp_url)
    ch = conn.channel()
    dlx, dlq, src = setup_dlx(ch)
    ch.basic_publish("", src, b"x")
    m, _, _ = ch.basic_get(src)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _, p, _ = get(ch, dlq)
    assert p.headers["x-last-death-reason"] == "rejected"
    assert p.headers["x-last-death-queue"] == src
    assert p.headers["x-last-death-exchange"] == ""
    cleanup(ch, dlx, dlq, src)
    conn.close()
