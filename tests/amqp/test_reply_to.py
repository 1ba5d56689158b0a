"""Direct reply-to (amq.rabbitmq.reply-to): RPC without declaring a reply queue."""

import pika
import pytest

from amqp_helpers import unique, wait_until, peer  # noqa: F401 (fixtures)


def test_rpc_over_direct_reply_to(peer):
    server = peer.connect()
    sch = server.channel()
    rpc_q = unique("rpc")
    sch.queue_declare(rpc_q, auto_delete=True)

    def serve(c, m, p, body):
        c.basic_publish("", p.reply_to, body.upper(), pika.BasicProperties(correlation_id=p.correlation_id))
        c.basic_ack(m.delivery_tag)

    sch.basic_consume(rpc_q, serve)

    client = peer.connect()
    cch = client.channel()
    replies = []
    cch.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: replies.append((p.correlation_id, b)), auto_ack=True)
    assert cch.queue_declare("amq.rabbitmq.reply-to", passive=True).method.consumer_count == 1
    for i in range(3):
        cch.basic_publish(
            "", rpc_q, f"req{i}".encode(),
            pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id=str(i)),
        )
    def done():
        server.process_data_events(time_limit=0)
        client.process_data_events(time_limit=0)
        return len(replies) == 3
    assert wait_until(client, done)
    assert sorted(replies) == [("0", b"REQ0"), ("1", b"REQ1"), ("2", b"REQ2")]
    server.close()
    client.close()


def test_reply_to_requires_a_no_ack_reply_consumer(peer):
    conn = peer.connect()
    ch = conn.channel()
    ch.basic_publish("", unique("any"), b"x", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(unique("after"))
    assert e.value.reply_code == 406 and "fast reply consumer does not exist" in e.value.reply_text
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)
    assert e.value.reply_code == 406
    conn.close()


def test_reply_address_dies_with_its_consumer(peer):
    client = peer.connect()
    cch = client.channel()
    cch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
    seen = []
    server = peer.connect()
    sch = server.channel()
    q = unique("rpc2")
    sch.queue_declare(q, auto_delete=True)
    sch.basic_consume(q, lambda c, m, p, b: seen.append(p.reply_to), auto_ack=True)
    cch.basic_publish("", q, b"r", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    assert wait_until(server, lambda: seen)
    address = seen[0]
    assert address.startswith("amq.rabbitmq.reply-to.")
    client.close()
    returned = []
    sch.add_on_return_callback(lambda c, m, p, b: returned.append(m.reply_code))
    sch.basic_publish("", address, b"late", mandatory=True)
    assert wait_until(server, lambda: returned)
    assert returned == [312]
    server.close()
