"""Stream queues follow RabbitMQ: the same pika calls run against ferrymq and against a real
RabbitMQ (Debian's rabbitmq-server, streams built in), and the outcomes (reply codes and
texts, deliveries and their offsets) must agree. Where RabbitMQ 3.10 answers a bad argument
with an internal error (541, the channel process crashed) ferrymq answers 406 naming the
argument, on purpose; those cases say so.

Also here: retention arguments act on the log (seen through Kafka's DescribeConfigs and the
first offset a consumer gets)."""

import datetime
import time

import pika
import pytest
from confluent_kafka.admin import ConfigResource

from interop_helpers import (  # noqa: F401 (fixtures)
    STREAM, StreamReader, admin, broker, connect, unique,
)

pytestmark = pytest.mark.rabbitmq


def outcome(url, action):
    """Runs `action(conn, ch)` on a fresh connection: ("ok", result) or how the broker
    closed the channel or the connection."""
    conn = connect(url)
    ch = conn.channel()
    try:
        result = action(conn, ch)
        # A consume error arrives after consume-ok on some brokers: let it.
        conn.process_data_events(time_limit=0.2)
        return ("ok", result)
    except pika.exceptions.ChannelClosedByBroker as e:
        return ("channel", e.reply_code, e.reply_text)
    except pika.exceptions.ConnectionClosedByBroker as e:
        return ("connection", e.reply_code, e.reply_text)
    finally:
        if conn.is_open:
            conn.close()


def both(broker, rabbitmq, action):
    return outcome(broker.amqp_url, action), outcome(rabbitmq.amqp_url, action)


def declare(name, durable=True, exclusive=False, auto_delete=False, **arguments):
    def action(conn, ch):
        return ch.queue_declare(
            name, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
            arguments={**STREAM, **arguments},
        ).method.queue
    return action


# ---- queue.declare --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "flags",
    [
        {"durable": False},
        {"exclusive": True},
        {"auto_delete": True},
        {"durable": False, "exclusive": True, "auto_delete": True},
    ],
    ids=["non-durable", "exclusive", "auto-delete", "all-three"],
)
def test_a_stream_is_durable_not_exclusive_not_auto_delete(broker, rabbitmq, flags):
    name = unique("flags")
    ours, theirs = both(broker, rabbitmq, declare(name, **flags))
    assert ours == theirs
    assert ours[:2] == ("channel", 406) and "invalid property" in ours[2]


@pytest.mark.parametrize(
    "arguments",
    [
        {"x-max-age": "7D"}, {"x-max-age": "12h"}, {"x-max-age": "10m"}, {"x-max-age": "30s"},
        {"x-max-age": "1M"}, {"x-max-age": "2Y"},
        {"x-max-age": "0s"}, {"x-max-age": "1d"}, {"x-max-age": "5"}, {"x-max-age": "1h30m"},
        {"x-max-age": 5},
        {"x-max-length-bytes": 1_000_000}, {"x-max-length-bytes": -5},
        {"x-max-length-bytes": "5"},
        {"x-stream-max-segment-size-bytes": 1_000_000},
        {"x-stream-max-segment-size-bytes": 3_000_000_001},
        {"x-stream-max-segment-size-bytes": -1},
        {"x-message-ttl": 5}, {"x-max-length": 5}, {"x-dead-letter-exchange": "dlx"},
        {"x-max-priority": 5}, {"x-single-active-consumer": True},
        {"x-unknown-argument": 1},
    ],
    ids=lambda a: ",".join(f"{k}={v!r}" for k, v in a.items()),
)
def test_stream_arguments_are_validated_as_rabbitmq_does(broker, rabbitmq, arguments):
    name = unique("args")
    ours, theirs = both(broker, rabbitmq, declare(name, **arguments))
    assert ours == theirs


def test_a_server_named_stream_is_refused(broker, rabbitmq):
    ours, theirs = both(broker, rabbitmq, declare(""))
    assert ours == theirs and ours[:2] == ("channel", 406)


def test_reserved_names(broker, rabbitmq):
    ours, theirs = both(broker, rabbitmq, declare("amq." + unique("s")))
    assert ours == theirs and ours[:2] == ("channel", 403)


@pytest.fixture
def existing(broker, rabbitmq):
    """A stream with x-max-age 1D and five messages, on both brokers."""
    name = unique("existing")

    def make(conn, ch):
        declare(name, **{"x-max-age": "1D"})(conn, ch)
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish("", name, f"m{i}".encode())

    for url in (broker.amqp_url, rabbitmq.amqp_url):
        assert outcome(url, make) == ("ok", None)
    return name


@pytest.mark.parametrize(
    "redeclare",
    [
        {"durable": False, "arguments": {**STREAM, "x-max-age": "1D"}},
        {"exclusive": True, "arguments": {**STREAM, "x-max-age": "1D"}},
        {"auto_delete": True, "arguments": {**STREAM, "x-max-age": "1D"}},
        {"arguments": STREAM},
        {"arguments": {**STREAM, "x-max-age": "2D"}},
        {"arguments": {**STREAM, "x-max-age": 5}},
        {"arguments": {"x-queue-type": 5}},
        {"arguments": {}},
        {"arguments": {"x-queue-type": "quorum"}},
        {"arguments": {**STREAM, "x-max-age": "1D", "x-unknown-argument": 1}},
    ],
    ids=["non-durable", "exclusive", "auto-delete", "without-max-age", "other-max-age",
         "max-age-of-other-type", "queue-type-of-other-type", "classic", "quorum",
         "extra-unknown-arg"],
)
def test_redeclarations_compare_as_rabbitmq_does(broker, rabbitmq, existing, redeclare):
    flags = {"durable": True, **redeclare}

    def action(conn, ch):
        return ch.queue_declare(existing, **flags).method.queue

    ours, theirs = both(broker, rabbitmq, action)
    assert ours == theirs


def test_passive_declare_of_a_stream(broker, rabbitmq, existing):
    def passive(conn, ch):
        return ch.queue_declare(existing, passive=True).method.queue

    assert both(broker, rabbitmq, passive) == (("ok", existing), ("ok", existing))


# ---- consuming ------------------------------------------------------------------------------

def consume(queue, prefetch=10, global_qos=False, auto_ack=False, want=5, **arguments):
    """Consumes with the given settings; the (x-stream-offset, body) pairs delivered: waits
    (bounded) for `want` of them, then 0.3 s for any more."""

    def action(conn, ch):
        if prefetch is not None:
            ch.basic_qos(prefetch_count=prefetch, global_qos=global_qos)
        got = []

        def on(c, m, p, body):
            got.append((p.headers["x-stream-offset"], body.decode()))
            if not auto_ack:
                c.basic_ack(m.delivery_tag)

        ch.basic_consume(queue, on, auto_ack=auto_ack, arguments=arguments)
        deadline = time.monotonic() + 3
        while len(got) < want and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        return got

    return action


@pytest.mark.parametrize(
    "settings",
    [
        {"prefetch": None},
        {"global_qos": True},
        {"auto_ack": True},
    ],
    ids=["no-qos", "global-qos-only", "auto-ack"],
)
def test_consuming_needs_a_consumer_prefetch_and_manual_acks(broker, rabbitmq, existing, settings):
    ours, theirs = both(broker, rabbitmq, consume(existing, **settings))
    assert ours == theirs
    assert ours[0] != "ok"


ALL = [(i, f"m{i}") for i in range(5)]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        ("first", ALL),
        ("next", []),
        (2, ALL[2:]),
        (0, ALL),
        (-1, ALL),
        (100, []),
        ("10m", ALL),
        (datetime.datetime(2020, 1, 1), ALL),
        (datetime.datetime(2100, 1, 1), []),
        (None, []),
    ],
    ids=["first", "next", "numeric", "zero", "negative", "beyond-end", "interval",
         "past-timestamp", "future-timestamp", "default-next"],
)
def test_x_stream_offset_starts_where_rabbitmq_starts(broker, rabbitmq, existing, offset, expected):
    arguments = {} if offset is None else {"x-stream-offset": offset}
    ours, theirs = both(broker, rabbitmq, consume(existing, want=len(expected), **arguments))
    assert ours == theirs == ("ok", expected)


@pytest.mark.parametrize("offset", ["0s", "tomorrow", True], ids=["zero-interval", "word", "bool"])
def test_bad_x_stream_offset(broker, rabbitmq, existing, offset):
    ours, theirs = both(broker, rabbitmq, consume(existing, **{"x-stream-offset": offset}))
    prefix = f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{existing}' in vhost '/'"
    assert ours[:2] == ("channel", 406) and ours[2].startswith(prefix)
    if theirs[0] == "channel":
        # RabbitMQ's own wording of the reason is an Erlang term; the code and arg agree.
        assert theirs[:2] == ("channel", 406) and theirs[2].startswith(prefix)
    else:
        # RabbitMQ 3.10 crashes the channel on these (541 INTERNAL_ERROR): a 406 is better.
        assert theirs == ("connection", 541, "INTERNAL_ERROR")


@pytest.mark.parametrize("method", ["get", "purge"])
def test_basic_get_and_purge_are_not_supported(broker, rabbitmq, existing, method):
    def action(conn, ch):
        if method == "get":
            return ch.basic_get(existing)
        return ch.queue_purge(existing)

    ours, theirs = both(broker, rabbitmq, action)
    assert ours == theirs and ours[:2] == ("connection", 540)


def test_deliveries_look_the_same(broker, rabbitmq):
    """Published through an exchange, consumed from the stream: exchange, routing key,
    properties and headers (x-stream-offset added) as RabbitMQ delivers them."""
    name, exchange = unique("looks"), unique("looks-x")

    def action(conn, ch):
        declare(name)(conn, ch)
        ch.exchange_declare(exchange, "topic")
        ch.queue_bind(name, exchange, "a.#")
        ch.confirm_delivery()
        props = pika.BasicProperties(
            content_type="text/plain", headers={"n": 1, "s": "x", "t": {"k": True}},
            message_id="id-1", correlation_id="c", priority=3, delivery_mode=2,
            timestamp=1_700_000_000, type="kind", app_id="app",
        )
        ch.basic_publish(exchange, "a.b", b"body", props)
        ch.basic_qos(prefetch_count=1)
        got = []
        ch.basic_consume(
            name, lambda c, m, p, b: got.append((m, p, b)), arguments={"x-stream-offset": "first"},
        )
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        ((m, p, b),) = got
        return (m.exchange, m.routing_key, m.redelivered, b, p.content_type, p.headers,
                p.message_id, p.correlation_id, p.priority, p.delivery_mode, p.timestamp,
                p.type, p.app_id)

    ours, theirs = both(broker, rabbitmq, action)
    # RabbitMQ 3.10 streams store messages as AMQP 1.0, whose application properties hold
    # no tables: it drops the nested table header. ferrymq keeps it; all else agrees.
    assert ours[1][5] == {"n": 1, "s": "x", "t": {"k": True}, "x-stream-offset": 0}
    assert theirs[1][5] == {"n": 1, "s": "x", "x-stream-offset": 0}
    del ours[1][5]["t"]
    assert ours == theirs


# ---- retention (ferrymq only: RabbitMQ's retention runs on its own schedule) -----------------

def test_retention_arguments_act_on_the_log_and_show_as_topic_configs(broker):
    name = unique("retained")
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments={
        **STREAM,
        "x-max-length-bytes": 50_000,
        "x-stream-max-segment-size-bytes": 10_000,
        "x-max-age": "12h",
    })
    client = admin(broker)  # alive until its results are in
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = client.describe_configs([resource])[resource].result(10)
    assert configs["retention.bytes"].value == "50000"
    assert configs["segment.bytes"].value == "10000"
    assert configs["retention.ms"].value == str(12 * 3600 * 1000)
    ch.confirm_delivery()
    for _ in range(200):
        ch.basic_publish("", name, b"x" * 1000)
    # Retention runs every 100 ms here (the module's broker): whole old segments go, and
    # what remains is at least the limit, as Kafka's retention.bytes.
    deadline = time.monotonic() + 10
    while ch.queue_declare(name, passive=True).method.message_count > 70:
        assert time.monotonic() < deadline, "retention did not run"
        time.sleep(0.1)
    remaining = ch.queue_declare(name, passive=True).method.message_count
    assert remaining >= 45
    conn.close()
    reader = StreamReader(broker.amqp_url, name, offset="first")
    got = reader.take(remaining)
    reader.close()
    first = got[0][1].headers["x-stream-offset"]
    assert first == 200 - remaining, "first is the oldest retained message"

    # Without arguments a stream keeps everything (RabbitMQ's default, not Kafka's 7 days).
    plain = unique("forever")
    conn = connect(broker.amqp_url)
    conn.channel().queue_declare(plain, durable=True, arguments=STREAM)
    conn.close()
    resource = ConfigResource(ConfigResource.Type.TOPIC, plain)
    configs = client.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "-1"
    assert configs["retention.bytes"].value == "-1"


# ---- the wording stream redeclarations share with classic queues and exchanges --------------

@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"x-message-ttl": 5}, {"x-message-ttl": 6}),
        ({"x-message-ttl": 5}, {"x-message-ttl": "5"}),
        ({"x-message-ttl": 5}, {}),
    ],
    ids=["other-value", "other-type", "absent"],
)
def test_inequivalent_classic_queue_arguments_are_worded_as_rabbitmq(broker, rabbitmq, first, second):
    name = unique("classic")

    def action(conn, ch):
        ch.queue_declare(name, durable=True, arguments=first)
        return ch.queue_declare(name, durable=True, arguments=second).method.queue

    ours, theirs = both(broker, rabbitmq, action)
    assert ours == theirs and ours[:2] == ("channel", 406)


def test_inequivalent_alternate_exchange_is_worded_as_rabbitmq(broker, rabbitmq):
    name = unique("ae")

    def action(conn, ch):
        ch.exchange_declare(name, "direct", arguments={"alternate-exchange": "a"})
        return ch.exchange_declare(name, "direct", arguments={"alternate-exchange": "b"}).method

    ours, theirs = both(broker, rabbitmq, action)
    assert ours == theirs and ours[:2] == ("channel", 406)


def test_deleting_a_stream_cancels_its_consumers(broker, rabbitmq):
    """queue.delete from another connection: delete-ok, and the consumer gets basic.cancel
    while its channel stays open."""

    def action_on(url):
        name = unique("deleted")

        def action(conn, ch):
            declare(name)(conn, ch)
            ch.basic_qos(prefetch_count=10)
            cancelled = []
            ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
            tag = ch.basic_consume(name, lambda *a: None)
            other = connect(url)
            deleted = other.channel().queue_delete(name).method.message_count
            other.close()
            deadline = time.monotonic() + 3
            while not cancelled and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.05)
            return deleted, cancelled == [tag], ch.is_open

        return action

    for url in (broker.amqp_url, rabbitmq.amqp_url):
        assert outcome(url, action_on(url)) == ("ok", (0, True, True))
