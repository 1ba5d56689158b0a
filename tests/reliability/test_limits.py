"""Limits seen from both protocols: a vhost's max-queues counts its queues and its streams, so
Kafka topics meet the same limit as AMQP queues (the differential suite checks the AMQP side
against RabbitMQ)."""

import socket
import struct

import pika
import pytest
import requests
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until


def test_max_queues_counts_kafka_topics_and_stream_queues(broker):
    api = broker.http_url + "/api/vhost-limits/%2F/max-queues"
    auth = ("guest", "guest")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("first", 1)])["first"].result(timeout=10)
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    ch = conn.channel()
    ch.queue_declare("classic")
    assert requests.put(api, json={"value": 2}, auth=auth, timeout=10).status_code == 204

    with pytest.raises(KafkaException) as refused:
        admin.create_topics([NewTopic("second", 1)])["second"].result(timeout=10)
    error = refused.value.args[0]
    assert error.code() == KafkaError.POLICY_VIOLATION, error
    assert "queue limit in vhost '/' (2) is reached" in error.str()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as full:
        ch.queue_declare("stream", durable=True, arguments={"x-queue-type": "stream"})
    assert full.value.reply_code == 406

    # Deleting one makes room for the other kind; raising the limit does too.
    admin.delete_topics(["first"])["first"].result(timeout=10)
    ch = conn.channel()
    ch.queue_declare("stream", durable=True, arguments={"x-queue-type": "stream"})
    assert requests.delete(api, auth=auth, timeout=10).status_code == 204
    admin.create_topics([NewTopic("second", 1)])["second"].result(timeout=10)
    conn.close()


def test_limits_survive_a_restart(make_broker):
    b = make_broker()
    auth = ("guest", "guest")
    url = b.http_url + "/api/vhost-limits/%2F/max-connections"
    assert requests.put(url, json={"value": 5}, auth=auth, timeout=10).status_code == 204
    b.restart()
    listed = requests.get(b.http_url + "/api/vhost-limits/%2F", auth=auth, timeout=10).json()
    assert listed == [{"vhost": "/", "value": {"max-connections": 5}}]


def _closed_at_once(sock) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_kafka_max_connections_per_ip_closes_the_extra_connection(make_broker):
    b = make_broker(env={"FERRYMQ_KAFKA_MAX_CONNECTIONS_PER_IP": "2"})
    first, second = (socket.create_connection(b.kafka, timeout=5) for _ in range(2))
    # ApiVersions v0 from the first: it is served while the address is at its limit.
    request = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    first.sendall(struct.pack(">i", len(request)) + request)
    size = struct.unpack(">i", first.recv(4))[0]
    assert size > 0
    third = socket.create_connection(b.kafka, timeout=5)
    assert _closed_at_once(third)
    b.wait_for_log("too many from this address")
    second.close()
    # The slot is given back when a connection ends.
    fourth = wait_until(lambda: _open_one(b), timeout=10, message="a slot freed")
    for s in (first, third, fourth):
        s.close()


def _open_one(b):
    s = socket.create_connection(b.kafka, timeout=5)
    s.settimeout(0.3)
    try:
        if s.recv(1) == b"":
            s.close()
            return None
    except TimeoutError:
        return s  # still open: accepted
    except ConnectionResetError:
        s.close()
        return None
    return s


def test_amqp_max_connections_refuses_connection_open_with_rabbitmqs_530(make_broker):
    b = make_broker(env={"FERRYMQ_AMQP_MAX_CONNECTIONS": "2"})
    params = pika.URLParameters(b.amqp_url)
    first, second = pika.BlockingConnection(params), pika.BlockingConnection(params)
    # pika reports a close during connection.open as a probable access denial, with the reply.
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        pika.BlockingConnection(params)
    assert ("(530) 'NOT_ALLOWED - connection refused: node connection limit (2) is reached'"
            in str(refused.value)), refused.value
    # Refused at once, not left waiting; the open ones are untouched, and a slot comes back
    # when one closes.
    second.channel().queue_declare("still-served")
    first.close()
    third = wait_until(lambda: _try_connect(params), timeout=10, message="a freed slot")
    third.close()
    second.close()


def _try_connect(params):
    try:
        return pika.BlockingConnection(params)
    except pika.exceptions.ProbableAccessDeniedError:
        return None


def test_vhost_max_connections_holds_under_concurrent_opens(broker):
    """aio-pika clients opening at the same moment: exactly the limit get in."""
    import asyncio

    import aio_pika

    limit = 5
    url = broker.http_url + "/api/vhost-limits/%2F/max-connections"
    assert requests.put(url, json={"value": limit}, auth=("guest", "guest"),
                        timeout=10).status_code == 204

    async def scenario():
        async def open_one():
            try:
                return await aio_pika.connect(broker.amqp_url, timeout=10)
            # aiormq reports connection.close in place of open-ok as an unexpected frame.
            except (aio_pika.exceptions.AMQPError, asyncio.CancelledError) as e:
                return e

        results = await asyncio.gather(*(open_one() for _ in range(24)))
        opened = [r for r in results if isinstance(r, aio_pika.abc.AbstractConnection)]
        refused = [r for r in results if not isinstance(r, aio_pika.abc.AbstractConnection)]
        for conn in opened:
            await conn.close()
        return opened, refused

    opened, refused = asyncio.run(scenario())
    assert len(opened) == limit, refused
    assert all("Connection.Close" in str(e) for e in refused), refused
    reason = "connection limit (5) is reached"
    wait_until(lambda: sum(reason in line for line in broker.output) == len(refused),
               message="each refusal logged with RabbitMQ's text")
