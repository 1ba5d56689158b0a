"""What an AMQP client declared durable survives a restart (clean, and kill -9): exchanges,
queues with their arguments, bindings between durable objects, persistent messages with
their properties and order, and the redelivered flag of messages in flight. Transient ones
are gone, as in RabbitMQ."""

import datetime
import decimal

import pika
import pytest

from conftest import get_all


def connect(broker):
    return pika.BlockingConnection(pika.URLParameters(broker.amqp_url))


def closed_with(code, action):
    """Runs `action` (which takes a fresh channel) and returns the channel-close code."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
        action()
    assert err.value.reply_code == code, err.value
    return err.value


def declare_world(ch):
    ch.exchange_declare("events", "topic", durable=True,
                        arguments={"alternate-exchange": "unrouted"})
    ch.exchange_declare("unrouted", "fanout", durable=True)
    ch.exchange_declare("fan", "fanout", durable=True)
    ch.exchange_declare("match", "headers", durable=True)
    ch.exchange_declare("internal-x", "direct", durable=True, internal=True)
    ch.exchange_declare("temp-x", "fanout", durable=False)
    ch.queue_declare("orders", durable=True, arguments={
        "x-max-length": 100, "x-dead-letter-exchange": "dlx", "x-message-ttl": 600000,
        "x-max-priority": 5,
    })
    ch.queue_declare("audit", durable=True)
    ch.queue_declare("lost-and-found", durable=True)
    ch.queue_declare("scratch", durable=False)
    ch.queue_declare("mine", durable=True, exclusive=True)
    ch.queue_bind("orders", "events", "order.*")
    ch.queue_bind("scratch", "events", "#")
    ch.exchange_bind("fan", "events", "audit.#")
    ch.queue_bind("audit", "fan")
    ch.queue_bind("audit", "match", arguments={"x-match": "any", "region": "eu"})
    ch.queue_bind("lost-and-found", "unrouted")
    ch.queue_bind("orders", "amq.direct", "direct-key")
    ch.queue_bind("orders", "temp-x")


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_durable_definitions_survive_and_transient_ones_do_not(make_broker, crash):
    broker = make_broker()
    conn = connect(broker)
    declare_world(conn.channel())
    conn.close()

    broker.restart(crash=crash)

    conn = connect(broker)
    ch = conn.channel()
    for name, kind in [("events", "topic"), ("unrouted", "fanout"), ("fan", "fanout"),
                       ("match", "headers"), ("internal-x", "direct")]:
        ch.exchange_declare(name, kind, passive=True)
    # Redeclaring with the stored properties and arguments is equivalent...
    ch.exchange_declare("events", "topic", durable=True,
                        arguments={"alternate-exchange": "unrouted"})
    ch.exchange_declare("internal-x", "direct", durable=True, internal=True)
    ok = ch.queue_declare("orders", durable=True, arguments={
        "x-max-length": 100, "x-dead-letter-exchange": "dlx", "x-message-ttl": 600000,
        "x-max-priority": 5,
    })
    assert ok.method.message_count == 0
    # ... anything else is not (the arguments came back, with their values).
    closed_with(406, lambda: conn.channel().queue_declare(
        "orders", durable=True, arguments={"x-max-length": 99}))
    closed_with(406, lambda: conn.channel().exchange_declare("events", "direct", durable=True))
    for name in ["temp-x"]:
        closed_with(404, lambda: conn.channel().exchange_declare(name, passive=True))
    for name in ["scratch", "mine"]:
        closed_with(404, lambda: conn.channel().queue_declare(name, passive=True))

    ch = conn.channel()
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2)
    ch.basic_publish("events", "order.new", b"1", props)
    ch.basic_publish("events", "audit.x", b"2", props)
    ch.basic_publish("events", "nothing.matches", b"3", props)
    ch.basic_publish("amq.direct", "direct-key", b"4", props)
    ch.basic_publish("match", "", b"5", pika.BasicProperties(headers={"region": "eu"}))
    counts = {q: ch.queue_declare(q, passive=True).method.message_count
              for q in ["orders", "audit", "lost-and-found"]}
    assert counts == {"orders": 2, "audit": 2, "lost-and-found": 1}
    conn.close()


def test_deleted_definitions_stay_deleted(make_broker):
    broker = make_broker()
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("x", "direct", durable=True)
    ch.exchange_declare("gone-x", "direct", durable=True)
    ch.queue_declare("q", durable=True)
    ch.queue_declare("gone-q", durable=True)
    ch.queue_bind("q", "x", "a")
    ch.queue_bind("q", "x", "b")
    ch.queue_bind("q", "gone-x", "c")
    ch.queue_unbind("q", "x", "b")
    ch.exchange_delete("gone-x")
    ch.queue_delete("gone-q")
    # Deleted with messages, then declared again under the same name: starts empty.
    ch.queue_declare("again", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", "again", b"old", pika.BasicProperties(delivery_mode=2))
    ch.queue_delete("again")
    ch.queue_declare("again", durable=True)
    ch.basic_publish("", "again", b"new", pika.BasicProperties(delivery_mode=2))
    conn.close()

    broker.restart(crash=True)

    conn = connect(broker)
    closed_with(404, lambda: conn.channel().exchange_declare("gone-x", passive=True))
    closed_with(404, lambda: conn.channel().queue_declare("gone-q", passive=True))
    ch = conn.channel()
    ch.confirm_delivery()
    for key in ["a", "b"]:
        ch.basic_publish("x", key, key.encode(), pika.BasicProperties(delivery_mode=2))
    assert ch.queue_declare("q", passive=True).method.message_count == 1
    method, _, body = ch.basic_get("again", auto_ack=True)
    assert body == b"new"
    assert ch.basic_get("again", auto_ack=True) == (None, None, None)
    conn.close()


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_persistent_messages_survive_with_their_properties_and_order(make_broker, crash):
    broker = make_broker()
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("kept", durable=True)
    ch.queue_declare("volatile", durable=False)
    ch.confirm_delivery()
    sent = []
    for i in range(200):
        persistent = i % 4 != 3
        props = pika.BasicProperties(
            delivery_mode=2 if persistent else 1,
            content_type="application/json", correlation_id=f"c{i}", message_id=f"id-{i}",
            timestamp=1_700_000_000 + i, priority=i % 3, app_id="restart-test",
            headers={"n": i, "s": "text", "d": decimal.Decimal("1.25"), "nested": {"ok": True}, "list": [1, "a"],
                     "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)},
        )
        body = f"message {i}".encode() * (1 + i % 50)
        ch.basic_publish("", "kept", body, props)
        ch.basic_publish("", "volatile", body, props)
        if persistent:
            sent.append((body, props))
    conn.close()

    broker.restart(crash=crash)

    conn = connect(broker)
    ch = conn.channel()
    assert ch.queue_declare("kept", passive=True).method.message_count == len(sent)
    closed_with(404, lambda: conn.channel().queue_declare("volatile", passive=True))
    ch = conn.channel()
    taken = get_all(ch, "kept")
    assert not any(method.redelivered for method, _, _ in taken)
    got = [(body, props) for _, props, body in taken]
    assert [b for b, _ in got] == [b for b, _ in sent]
    for (_, expected), (_, actual) in zip(sent, got):
        for field in ["delivery_mode", "content_type", "correlation_id", "message_id",
                      "timestamp", "priority", "app_id", "headers"]:
            assert getattr(actual, field) == getattr(expected, field), field
    conn.close()


def test_messages_in_flight_come_back_redelivered_after_a_crash(make_broker):
    broker = make_broker()
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("work", durable=True)
    ch.confirm_delivery()
    for i in range(10):
        ch.basic_publish("", "work", f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
    taken = [ch.basic_get("work", auto_ack=False) for _ in range(4)]
    # m0 and m2 acknowledged; m1 and m3 in flight when the broker dies.
    ch.basic_ack(taken[0][0].delivery_tag)
    ch.basic_ack(taken[2][0].delivery_tag)
    # A round trip makes sure the acks were processed before the kill.
    ch.queue_declare("work", passive=True)

    broker.restart(crash=True)

    conn = connect(broker)
    ch = conn.channel()
    got = [(body.decode(), method.redelivered) for method, _, body in get_all(ch, "work")]
    assert got == [("m1", True), ("m3", True)] + [(f"m{i}", False) for i in range(4, 10)]
    conn.close()
