"""aio-pika (aiormq; publisher confirms on by default) and pika's SelectConnection."""

import asyncio

import aio_pika
import aiormq
import pika
import pytest

from amqp_helpers import unique, peer  # noqa: F401 (fixtures)


def test_aio_pika_publish_consume_rpc_with_confirms(peer):
    async def scenario():
        conn = await aio_pika.connect_robust(peer.url)
        async with conn:
            ch = await conn.channel()  # publisher_confirms=True by default
            await ch.set_qos(prefetch_count=10)
            x = await ch.declare_exchange(unique("aio-x"), aio_pika.ExchangeType.TOPIC, auto_delete=True)
            q = await ch.declare_queue(unique("aio-q"), auto_delete=True, arguments={"x-max-priority": 5})
            await q.bind(x, "orders.*")
            for i in range(50):
                confirmation = await x.publish(
                    aio_pika.Message(str(i).encode(), headers={"i": i}, priority=i % 5),
                    routing_key="orders.new",
                )
                assert isinstance(confirmation, aiormq.spec.Basic.Ack)
            got = []
            async with q.iterator() as it:
                async for message in it:
                    async with message.process():
                        got.append(message.headers["i"])
                    if len(got) == 50:
                        break
            assert sorted(got) == list(range(50))
            # A mandatory publish to nowhere comes back (basic.return before the ack).
            strict = await conn.channel(on_return_raises=True)
            with pytest.raises(aio_pika.exceptions.DeliveryError) as returned:
                await strict.default_exchange.publish(
                    aio_pika.Message(b"x"), routing_key=unique("none"), mandatory=True
                )
            assert returned.value.frame.reply_code == 312

            # RPC over direct reply-to.
            rpc_q = await ch.declare_queue(unique("aio-rpc"), auto_delete=True)

            async def serve(message: aio_pika.abc.AbstractIncomingMessage):
                async with message.process():
                    await ch.default_exchange.publish(
                        aio_pika.Message(message.body[::-1], correlation_id=message.correlation_id),
                        routing_key=message.reply_to,
                    )

            await rpc_q.consume(serve)
            reply_q = await ch.get_queue("amq.rabbitmq.reply-to", ensure=False)
            future = asyncio.get_running_loop().create_future()

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage):
                future.set_result((message.correlation_id, message.body))

            await reply_q.consume(on_reply, no_ack=True)
            await ch.default_exchange.publish(
                aio_pika.Message(b"abc", reply_to="amq.rabbitmq.reply-to", correlation_id="42"),
                routing_key=rpc_q.name,
            )
            assert await asyncio.wait_for(future, 10) == ("42", b"cba")

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_pika_select_connection_confirms_and_consume(peer):
    q = unique("select")
    state = {"acked": 0, "received": [], "error": None}
    params = pika.URLParameters(peer.url)

    def on_open(conn):
        conn.channel(on_open_callback=on_channel)

    def on_channel(ch):
        state["ch"] = ch
        ch.confirm_delivery(on_confirm)
        ch.queue_declare(q, auto_delete=True, callback=lambda _: on_declared(ch))

    def on_declared(ch):
        ch.basic_qos(prefetch_count=5)
        ch.basic_consume(q, on_message)
        for i in range(100):
            ch.basic_publish("", q, str(i).encode(), pika.BasicProperties(delivery_mode=2))

    def on_confirm(frame):
        m = frame.method
        if not isinstance(m, pika.spec.Basic.Ack):
            state["error"] = f"nack {m}"
        state["acked"] = max(state["acked"], m.delivery_tag)

    def on_message(ch, method, props, body):
        state["received"].append(int(body))
        ch.basic_ack(method.delivery_tag)

    def check_done():
        if len(state["received"]) == 100 and state["acked"] == 100 and conn.is_open:
            conn.close()
        elif conn.is_open:
            conn.ioloop.call_later(0.05, check_done)

    conn = pika.SelectConnection(
        params, on_open_callback=on_open, on_close_callback=lambda c, reason: c.ioloop.stop()
    )
    conn.ioloop.call_later(0.05, check_done)
    conn.ioloop.call_later(20, lambda: conn.is_open and conn.close())
    conn.ioloop.start()
    assert state["error"] is None
    assert state["acked"] == 100
    assert state["received"] == list(range(100))
