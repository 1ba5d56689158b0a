"""Connection level: protocol header, start properties, authentication, vhosts, tune,
heartbeats, frame errors, channel errors, close in both directions, connection.blocked."""

import socket
import struct
import time

import amqp  # py-amqp, kombu's transport: uses AMQPLAIN
import pika
import pytest
from pika import spec

from amqp_helpers import connect, unique, wait_until, peer, amqp_url  # noqa: F401 (fixtures)
from rawamqp import RawClient


def test_wrong_protocol_header_gets_ours_back_and_eof(peer):
    headers = [b"AMQP\x00\x00\x09\x00", b"GET / HTTP/1.1\r\n", b"AMQP\x00\x00\x0a\x00"]
    if not peer.is_rabbitmq:
        # RabbitMQ still speaks AMQP 0-8 and 0-9; ferrymq only 0-9-1 (docs/amqp.md).
        headers += [b"AMQP\x01\x01\x08\x00", b"AMQP\x01\x01\x00\x09"]
    for header in headers:
        raw = RawClient.from_url(peer.url)
        raw.send(header)
        data = b""
        raw.sock.settimeout(5)
        while True:
            try:
                chunk = raw.sock.recv(100)
            except ConnectionResetError:  # unread input makes the close a reset
                break
            if not chunk:
                break
            data += chunk
        assert data == b"AMQP\x00\x00\x09\x01", header
        raw.close()


def test_server_properties_and_capabilities(peer):
    conn = peer.connect()
    props = conn._impl.server_properties
    caps = props["capabilities"]
    for cap in [
        "publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
        "connection.blocked", "consumer_priorities", "authentication_failure_close",
        "per_consumer_qos", "direct_reply_to",
    ]:
        assert caps[cap] is True, cap
    for key in ["product", "version", "platform", "copyright", "information"]:
        assert props[key], key
    assert props["product"] == b"RabbitMQ" or props["product"] == "RabbitMQ"
    conn.close()


def test_kombu_sees_rabbitmq_qos_semantics(amqp_url):
    """kombu asks for the channel-wide prefetch with global=true only when it recognises
    RabbitMQ >= 3.3: that is what ferrymq implements."""
    import kombu

    with kombu.Connection(amqp_url.replace("amqp://", "pyamqp://")) as conn:
        conn.connect()
        assert conn.qos_semantics_matches_spec is False


def test_amqplain_login_with_py_amqp(peer):
    p = pika.URLParameters(peer.url)
    conn = amqp.Connection(f"{p.host}:{p.port}", userid="guest", password="guest", login_method="AMQPLAIN")
    conn.connect()
    ch = conn.channel()
    q = unique("amqplain")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_publish(amqp.Message("hi"), routing_key=q)
    assert ch.basic_get(q, no_ack=True).body == "hi"
    conn.close()


def test_wrong_password_is_403_access_refused(peer):
    p = pika.URLParameters(peer.url)
    p.credentials = pika.PlainCredentials("guest", "wrong")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        pika.BlockingConnection(p)
    assert "403" in str(e.value) and "ACCESS_REFUSED" in str(e.value)


def test_unknown_user_is_403_too(peer):
    p = pika.URLParameters(peer.url)
    p.credentials = pika.PlainCredentials("nobody", "x")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(p)


def test_unknown_vhost_is_530(peer):
    p = pika.URLParameters(peer.url)
    p.virtual_host = unique("no-vhost")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        pika.BlockingConnection(p)
    assert "(530)" in str(e.value) and "NOT_ALLOWED" in str(e.value)


def test_tune_honours_lower_client_values(peer):
    raw = RawClient.from_url(peer.url)
    tune = raw.handshake(frame_max=4096, channel_max=2, heartbeat=0)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    raw.open_channel(1)
    q = unique("tuned")
    raw.send_method(1, spec.Queue.Declare(queue=q, auto_delete=True))
    raw.expect(spec.Queue.DeclareOk)
    raw.send_method(1, spec.Basic.Publish(routing_key=q))
    body = b"z" * 10000
    raw.send(pika.frame.Header(1, len(body), spec.BasicProperties()).marshal())
    for i in range(0, len(body), 4088):
        raw.send(pika.frame.Body(1, body[i : i + 4088]).marshal())
    raw.send_method(1, spec.Basic.Get(queue=q, no_ack=True))
    raw.expect(spec.Basic.GetOk)
    header = raw.recv_frame()
    sizes = []
    while sum(sizes) < header.body_size:
        sizes.append(len(raw.recv_frame().fragment))
    assert sizes == [4088, 4088, 1824], "bodies split at the negotiated frame_max"
    # channel_max 2: a third channel is refused.
    raw.open_channel(2)
    raw.send_method(3, spec.Channel.Open())
    kind, code, _ = raw.closed_with()
    assert (kind, code) == ("connection", 530)
    raw.close()


@pytest.mark.parametrize("bad", [{"frame_max": 1024}, {"channel_max": 5000}, {"frame_max": 200000}])
def test_tune_ok_above_the_offer_is_530(peer, bad):
    raw = RawClient.from_url(peer.url)
    raw.send(b"AMQP\x00\x00\x09\x01")
    raw.expect(spec.Connection.Start)
    raw.send_method(0, spec.Connection.StartOk(mechanism="PLAIN", response=b"\0guest\0guest"))
    raw.expect(spec.Connection.Tune)
    values = {"channel_max": 100, "frame_max": 8192, "heartbeat": 0, **bad}
    raw.send_method(0, spec.Connection.TuneOk(**values))
    kind, code, _ = raw.closed_with()
    if peer.is_rabbitmq:
        # RabbitMQ resets the socket (its close frame is lost with the reset).
        assert kind in ("eof", "connection")
    else:
        assert (kind, code) == ("connection", 530)
    raw.close()


def test_oversized_frame_is_501_before_its_payload_arrives(peer):
    raw = RawClient.from_url(peer.url)
    raw.handshake(frame_max=4096)
    raw.open_channel(1)
    # Only the 7-byte header of a 1 GB frame: the broker must refuse it from the header.
    raw.send(struct.pack(">BHI", 3, 1, 1 << 30))
    kind, code, _ = raw.closed_with()
    assert (kind, code) == ("connection", 501)
    raw.close()


def test_bad_frame_end_is_501(peer):
    raw = RawClient.from_url(peer.url)
    raw.handshake()
    raw.send_frame(1, 0, pika.frame.Method(0, spec.Channel.Open()).marshal()[7:-1], end=0)
    kind, code, _ = raw.closed_with()
    assert (kind, code) == ("connection", 501)
    raw.close()


@pytest.mark.parametrize("case", ["body-without-header", "header-without-publish", "method-inside-content"])
def test_content_sequencing_is_enforced_505(peer, case):
    raw = RawClient.from_url(peer.url)
    raw.handshake()
    raw.open_channel(1)
    if case == "body-without-header":
        raw.send_method(1, spec.Basic.Publish(routing_key="x"))
        raw.send(pika.frame.Body(1, b"abc").marshal())
    elif case == "header-without-publish":
        raw.send(pika.frame.Header(1, 3, spec.BasicProperties()).marshal())
    else:
        raw.send_method(1, spec.Basic.Publish(routing_key="x"))
        raw.send(pika.frame.Header(1, 3, spec.BasicProperties()).marshal())
        raw.send_method(1, spec.Queue.Declare(queue=unique("q")))
    kind, code, _ = raw.closed_with()
    assert (kind, code) == ("connection", 505)
    raw.close()


def test_frames_on_unopened_channels_and_double_open_are_504(peer):
    raw = RawClient.from_url(peer.url)
    raw.handshake()
    raw.send_method(7, spec.Queue.Declare(queue=unique("q")))
    kind, code, text = raw.closed_with()
    assert (kind, code) == ("connection", 504) and "channel.open" in text
    raw.close()
    raw = RawClient.from_url(peer.url)
    raw.handshake()
    raw.open_channel(1)
    raw.send_method(1, spec.Channel.Open())
    kind, code, _ = raw.closed_with()
    assert (kind, code) == ("connection", 504)
    raw.close()


def test_channel_error_does_not_touch_other_channels(peer):
    conn = peer.connect()
    ok_ch = conn.channel()
    bad_ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        bad_ch.queue_declare(unique("nope"), passive=True)
    q = unique("still-fine")
    ok_ch.queue_declare(q, auto_delete=True)
    ok_ch.basic_publish("", q, b"ok")
    assert ok_ch.basic_get(q, auto_ack=True)[2] == b"ok"
    # The channel number can be reused after its close completed.
    again = conn.channel(channel_number=bad_ch.channel_number)
    again.queue_declare(unique("reuse"), auto_delete=True)
    conn.close()


def test_bad_connection_does_not_harm_others(peer):
    good = peer.connect()
    ch = good.channel()
    raw = RawClient.from_url(peer.url)
    raw.handshake()
    raw.send(b"\x01\x00\x00garbage-garbage-garbage")
    raw.closed_with()
    raw.close()
    q = unique("survivor")
    ch.queue_declare(q, auto_delete=True)
    good.close()


def test_heartbeats_keep_an_idle_connection_alive(peer):
    conn = peer.connect(heartbeat=1)
    conn.sleep(3.5)  # keeps pika's I/O loop (and its heartbeats) running
    conn.process_data_events(time_limit=0.1)
    assert conn.is_open
    ch = conn.channel()
    ch.queue_declare(unique("alive"), auto_delete=True)
    conn.close()


def test_silent_peer_is_dropped_after_two_missed_heartbeats(amqp_url):
    raw = RawClient.from_url(amqp_url, timeout=10)
    raw.handshake(heartbeat=1)
    started = time.monotonic()
    assert raw.eof(timeout=8), "server must close a silent connection"
    assert time.monotonic() - started < 6
    raw.close()


def test_server_sends_heartbeats(amqp_url):
    raw = RawClient.from_url(amqp_url)
    raw.handshake(heartbeat=2)
    f = raw.recv_frame(timeout=3)
    assert isinstance(f, pika.frame.Heartbeat)
    raw.close()


def test_client_close_gets_close_ok(peer):
    raw = RawClient.from_url(peer.url)
    raw.handshake()
    raw.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    raw.expect(spec.Connection.CloseOk)
    if not peer.is_rabbitmq:  # RabbitMQ leaves closing the socket to the client
        assert raw.eof()
    raw.close()


def test_channel_flow_pauses_deliveries(amqp_url):
    """ferrymq implements channel.flow(active=false); RabbitMQ 3.10 answers 540."""
    conn = connect(amqp_url)
    ch = conn.channel()
    q = unique("flow")
    ch.queue_declare(q, auto_delete=True)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    flowed = []
    ch._impl.flow(False, lambda active: flowed.append(active))
    assert wait_until(conn, lambda: flowed == [False])
    ch.basic_publish("", q, b"held")
    conn.process_data_events(time_limit=0.3)
    assert got == []
    ch._impl.flow(True, lambda active: flowed.append(active))
    assert wait_until(conn, lambda: got == [b"held"])
    conn.close()


def test_shutdown_closes_clients_with_320(make_broker):
    b = make_broker()
    conn = connect(b.amqp_url)
    ch = conn.channel()
    b.stop()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        conn.process_data_events(time_limit=3)
        ch.queue_declare("x")
    assert e.value.reply_code == 320


def test_a_client_that_never_reads_harms_nobody_and_does_not_block_shutdown(make_broker):
    b = make_broker()
    raw = RawClient.from_url(b.amqp_url)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.handshake()
    raw.open_channel(1)
    request = pika.frame.Method(1, spec.Exchange.Declare(exchange="amq.direct", passive=True)).marshal()
    raw.sock.setblocking(False)
    sent = 0
    burst = request * 1000
    started = time.monotonic()
    while time.monotonic() - started < 5:
        try:
            sent += raw.sock.send(burst)
        except BlockingIOError:
            break  # the broker stopped reading us: its replies are not being read
    assert sent > 2 * 1024 * 1024, "the broker read well past its reply limit"
    other = connect(b.amqp_url)
    ch = other.channel()
    q = unique("unharmed")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_publish("", q, b"ok")
    assert ch.basic_get(q, auto_ack=True)[2] == b"ok"
    other.close()
    started = time.monotonic()
    assert b.stop() == 0
    assert time.monotonic() - started < 10
    raw.close()
