"""Publisher confirms, mandatory returns, transactions."""

import pika
import pytest

from amqp_helpers import unique, wait_until, peer  # noqa: F401 (fixtures)


def test_confirms_ack_every_publish(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("confirm")
    ch.queue_declare(q, auto_delete=True)
    ch.confirm_delivery()
    for i in range(100):
        ch.basic_publish("", q, str(i).encode())  # raises if nacked
    assert ch.queue_declare(q, passive=True).method.message_count == 100
    conn.close()


def test_async_confirms_with_multiple_acks(peer):
    """SelectConnection-style confirms: every sequence number is acked exactly once."""
    conn = peer.connect()
    ch = conn.channel()
    q = unique("async-confirm")
    ch.queue_declare(q, auto_delete=True)
    acked = set()

    def on_confirm(frame):
        m = frame.method
        assert isinstance(m, pika.spec.Basic.Ack)
        if m.multiple:
            acked.update(t for t in range(1, m.delivery_tag + 1))
        else:
            acked.add(m.delivery_tag)

    ch._impl.confirm_delivery(on_confirm)
    conn.process_data_events(time_limit=0.2)
    for i in range(500):
        ch._impl.basic_publish("", q, b"x")
    assert wait_until(conn, lambda: len(acked) == 500)
    assert acked == set(range(1, 501))
    conn.close()


def test_mandatory_unroutable_is_returned_then_acked(peer):
    conn = peer.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as e:
        ch.basic_publish("amq.direct", unique("nobody"), b"lost", mandatory=True)
    [returned] = e.value.messages
    assert returned.method.reply_code == 312 and returned.method.reply_text == "NO_ROUTE"
    assert returned.body == b"lost"
    # Without mandatory, an unroutable message is silently dropped and still acked.
    ch.basic_publish("amq.direct", unique("nobody"), b"dropped")
    conn.close()


def test_returned_message_keeps_its_properties(peer):
    conn = peer.connect()
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    props = pika.BasicProperties(headers={"k": "v"}, message_id="id-9")
    ch.basic_publish("", unique("missing"), b"back", props, mandatory=True)
    assert wait_until(conn, lambda: returned)
    m, p, b = returned[0]
    assert (m.reply_code, b, p.headers, p.message_id) == (312, b"back", {"k": "v"}, "id-9")
    conn.close()


def test_tx_commit_applies_publishes_and_acks_atomically(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("tx")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"old")
    ch.tx_select()
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_publish("", q, b"new1")
    ch.basic_publish("", q, b"new2")
    probe = conn.channel()
    assert probe.queue_declare(q, passive=True).method.message_count == 0, "nothing visible before commit"
    ch.tx_commit()
    assert probe.queue_declare(q, passive=True).method.message_count == 2
    assert [probe.basic_get(q, auto_ack=True)[2] for _ in range(2)] == [b"new1", b"new2"]
    probe.queue_delete(q)
    conn.close()


def test_tx_rollback_discards_publishes_and_restores_acks(peer):
    conn = peer.connect()
    ch = conn.channel()
    q = unique("rollback")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"kept")
    ch.tx_select()
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_publish("", q, b"discarded")
    ch.tx_rollback()
    # The ack was rolled back: the message is still unacked on this channel.
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch.queue_delete(q)
    conn.close()


def test_tx_and_confirm_modes_exclude_each_other(peer):
    conn = peer.connect()
    ch = conn.channel()
    ch.tx_select()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.confirm_delivery()
    assert e.value.reply_code == 406
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.tx_commit()
    assert e.value.reply_code == 406
    conn.close()
