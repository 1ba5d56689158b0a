"""queue.*: declare (passive, durable, exclusive, auto-delete, server-named, counts,
argument validation and equivalence), bind/unbind, purge, delete; length limits, SAC,
x-expires, quorum accepted as classic."""

import time

import pika
import pytest

from amqp_helpers import unique, wait_until, peer  # noqa: F401 (fixtures)


def closed_code(peer, action):
    conn = peer.connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        action(ch)
    conn.close()
    return e.value.reply_code, e.value.reply_text


def test_server_named_queue_and_declare_ok_counts(peer):
    conn = peer.connect()
    ch = conn.channel()
    ok = ch.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-") and ok.message_count == 0 and ok.consumer_count == 0
    ch.basic_publish("", ok.queue, b"1")
    ch.basic_publish("", ok.queue, b"2")
    ch.basic_consume(ok.queue, lambda *a: None, arguments={})
    # The consumer takes the messages (no prefetch): declare-ok counts ready messages only.
    conn.process_data_events(time_limit=0.2)
    again = ch.queue_declare(ok.queue, passive=True).method
    assert again.consumer_count == 1
    q = unique("counts")
    ch.confirm_delivery()
    ch.queue_declare(q, auto_delete=False)
    for _ in range(3):
        ch.basic_publish("", q, b"x")
    assert ch.queue_declare(q, passive=True).method.message_count == 3
    assert ch.queue_declare(q).method.message_count == 3
    ch.queue_delete(q)
    conn.close()


def test_passive_declare_of_missing_queue_is_404(peer):
    code, text = closed_code(peer, lambda ch: ch.queue_declare(unique("absent"), passive=True))
    assert code == 404 and "no queue" in text


def test_reserved_names_are_403(peer):
    code, _ = closed_code(peer, lambda ch: ch.queue_declare("amq." + unique("q")))
    assert code == 403


def test_argument_equivalence(peer):
    q = unique("equiv")
    conn = peer.connect()
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-max-length": 10, "x-custom": "a"})
    # Same arguments with another integer width, and a differing unknown arg: fine.
    ch.queue_declare(q, arguments={"x-max-length": 10, "x-custom": "b"})
    conn.close()

    code, text = closed_code(peer, lambda ch: ch.queue_declare(q, arguments={"x-max-length": 11}))
    assert code == 406 and "inequivalent arg 'x-max-length'" in text
    code, text = closed_code(peer, lambda ch: ch.queue_declare(q, durable=True, arguments={"x-max-length": 10}))
    assert code == 406 and "durable" in text
    code, _ = closed_code(peer, lambda ch: ch.queue_declare(q))
    assert code == 406
    conn = peer.connect()
    conn.channel().queue_delete(q)
    conn.close()


@pytest.mark.parametrize(
    "args",
    [
        {"x-message-ttl": -1},
        {"x-message-ttl": "soon"},
        {"x-expires": 0},
        {"x-max-length": -5},
        {"x-max-priority": 300},
        {"x-overflow": "drop-tail"},
        {"x-dead-letter-routing-key": "k"},
        {"x-single-active-consumer": "yes"},
    ],
)
def test_invalid_arguments_are_406(peer, args):
    code, text = closed_code(peer, lambda ch: ch.queue_declare(unique("bad-args"), arguments=args))
    assert code == 406
    assert "invalid arg" in text


def test_exclusive_queues_belong_to_their_connection(peer):
    owner = peer.connect()
    och = owner.channel()
    q = unique("mine")
    och.queue_declare(q, exclusive=True)
    for action in (
        lambda ch: ch.queue_declare(q, passive=True),
        lambda ch: ch.basic_consume(q, lambda *a: None),
        lambda ch: ch.basic_get(q),
        lambda ch: ch.queue_purge(q),
        lambda ch: ch.queue_delete(q),
        lambda ch: ch.queue_bind(q, "amq.fanout"),
    ):
        code, text = closed_code(peer, action)
        assert code == 405, text
    owner.close()
    # Gone with its connection.
    code, _ = closed_code(peer, lambda ch: ch.queue_declare(q, passive=True))
    assert code == 404


def test_auto_delete_queue_goes_with_last_consumer(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("autodel")
    ch.queue_declare(q, auto_delete=True)
    tag = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag)
    conn.process_data_events(time_limit=0.2)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert e.value.reply_code == 404
    conn.close()


def test_purge_and_delete_conditions(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("purge")
    ch.confirm_delivery()
    ch.queue_declare(q)
    for _ in range(4):
        ch.basic_publish("", q, b"x")
    assert ch.queue_purge(q).method.message_count == 4
    ch.basic_publish("", q, b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_delete(q, if_empty=True)
    assert e.value.reply_code == 406 and "not empty" in e.value.reply_text
    ch = conn.channel()
    ch.basic_consume(q, lambda *a: None)
    other = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        other.queue_delete(q, if_unused=True)
    assert e.value.reply_code == 406 and "in use" in e.value.reply_text
    other = conn.channel()
    assert other.queue_delete(q).method.message_count == 0  # the consumer took it
    other.queue_delete(unique("never"))  # deleting what does not exist is fine
    conn.close()


def test_empty_queue_name_means_last_declared(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind("", "amq.direct", "")  # binds the last queue with its own name as key
    ch.basic_publish("amq.direct", q, b"by-name")
    m, _, b = ch.basic_get("", auto_ack=True)
    assert b == b"by-name"
    conn.close()
    code, text = closed_code(peer, lambda ch: ch.queue_purge(""))
    assert code == 404 and "no previously declared queue" in text


def test_max_length_drop_head(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("maxlen")
    ch.confirm_delivery()  # RabbitMQ applies unconfirmed publishes asynchronously
    ch.queue_declare(q, arguments={"x-max-length": 2})
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    assert ch.queue_declare(q, passive=True).method.message_count == 2
    assert [ch.basic_get(q, auto_ack=True)[2] for _ in range(2)] == [b"3", b"4"]
    ch.queue_delete(q)
    conn.close()


def test_max_length_bytes_reject_publish_nacks_confirms(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("maxbytes")
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"12345678")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"too-big")
    ch.basic_publish("", q, b"12")
    assert ch.queue_declare(q, passive=True).method.message_count == 2
    ch.queue_delete(q)
    conn.close()


def test_single_active_consumer(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("sac")
    ch.queue_declare(q, arguments={"x-single-active-consumer": True})
    first, second = [], []
    t1 = ch.basic_consume(q, lambda c, m, p, b: first.append(b), auto_ack=True)
    ch.basic_consume(q, lambda c, m, p, b: second.append(b), auto_ack=True)
    for i in range(4):
        ch.basic_publish("", q, str(i).encode())
    assert wait_until(conn, lambda: len(first) == 4)
    conn.process_data_events(time_limit=0.1)
    assert second == []
    ch.basic_cancel(t1)
    ch.basic_publish("", q, b"after")
    assert wait_until(conn, lambda: second == [b"after"])
    ch.queue_delete(q)
    conn.close()


def test_queue_expires_when_unused(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("expires")
    ch.queue_declare(q, arguments={"x-expires": 300})
    time.sleep(1.5)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert e.value.reply_code == 404
    conn.close()


def test_quorum_queue_type_is_accepted_for_durable_queues(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("quorum")
    ok = ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    assert ok.method.queue == q
    ch.confirm_delivery()  # a real quorum queue applies publishes asynchronously
    ch.basic_publish("", q, b"q")
    assert ch.basic_get(q, auto_ack=True)[2] == b"q"
    ch.queue_delete(q)
    conn.close()
    code, _ = closed_code(peer, lambda ch: ch.queue_declare(unique("qq"), durable=False, arguments={"x-queue-type": "quorum"}))
    assert code == 406


def test_a_queue_cannot_take_the_name_of_a_kafka_topic(shared_broker):
    """Classic queues and streams (Kafka topics) of a vhost share one namespace."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from amqp_helpers import connect

    name = unique("topic")
    admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(10)
    conn = connect(shared_broker.amqp_url)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        conn.channel().queue_declare(name, durable=True)
    # The topic is a stream queue: a classic redeclaration differs in x-queue-type (RabbitMQ's
    # wording; a non-durable one would fail on 'durable' first).
    assert e.value.reply_code == 406 and "'x-queue-type'" in e.value.reply_text
    assert "'stream'" in e.value.reply_text
    conn.close()
