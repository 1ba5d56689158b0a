"""TLS on every listener kind, with stock clients: pika and aio-pika over amqps (and pika with
EXTERNAL, the user taken from the client certificate), confluent-kafka over SASL_SSL with
SCRAM-SHA-512, aiokafka over SSL, kcat over SASL_SSL, HTTPS for the management API; the
refusals (plaintext on a TLS port, untrusted, expired or missing client certificates, old TLS
versions, stalled handshakes), certificate reloads, and the refusal to start without
certificates."""

import asyncio
import signal
import socket
import ssl
import subprocess
import uuid

import aio_pika
import pika
import pytest
import requests
from confluent_kafka import Consumer, Producer

from certs import make_pki
from conftest import _binary
from sec_util import add_user, kafka_listeners, ready_addr, require_kcat, secure_broker, tls_env


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(make_broker, pki):
    b = secure_broker(make_broker, ("SSL", "SASL_SSL"), env=tls_env(pki))
    add_user(b, "alice", "alice-secret")
    return b


def client_context(pki, cert=None, **versions):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(*pki.client(cert))
    for attr, value in versions.items():
        setattr(ctx, attr, value)
    return ctx


def amqps_params(broker, pki, cert=None, credentials=None):
    host, port = ready_addr(broker, "amqps")
    return pika.ConnectionParameters(
        host="localhost", port=port,
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(client_context(pki, cert), "localhost"),
        connection_attempts=1,
    )


def connections(broker):
    return requests.get(f"{broker.http_url}/api/connections", auth=("guest", "guest"), timeout=10).json()


def test_pika_over_tls_publishes_and_consumes(tls_broker, pki):
    with pika.BlockingConnection(amqps_params(tls_broker, pki)) as conn:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        for i in range(50):
            ch.basic_publish("", q, f"m{i}".encode())
        got = [ch.basic_get(q, auto_ack=True)[2].decode() for _ in range(50)]
        assert got == [f"m{i}" for i in range(50)]
        rows = [r for r in connections(tls_broker) if r["protocol"] == "AMQP 0-9-1"]
        assert [(r["ssl"], r["ssl_protocol"]) for r in rows] == [(True, "tlsv1.3")]
        assert rows[0]["ssl_cipher"].startswith("TLS13_")


def test_pika_external_logs_in_as_the_certificate_common_name(tls_broker, pki):
    params = amqps_params(tls_broker, pki, cert="alice", credentials=pika.credentials.ExternalCredentials())
    with pika.BlockingConnection(params) as conn:
        conn.channel().queue_declare("", exclusive=True)
        (row,) = [r for r in connections(tls_broker) if r["protocol"] == "AMQP 0-9-1"]
        assert (row["user"], row["auth_mechanism"]) == ("alice", "EXTERNAL")
        assert row["peer_cert_subject"] == "CN=alice,O=ferrymq tests"
        assert row["peer_cert_issuer"] == "CN=ferrymq test CA,O=ferrymq tests"


def test_external_is_refused_for_a_certificate_naming_no_user(tls_broker, pki):
    params = amqps_params(tls_broker, pki, cert="nobody", credentials=pika.credentials.ExternalCredentials())
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as refused:
        pika.BlockingConnection(params)
    assert "403" in str(refused.value) or "ACCESS_REFUSED" in str(refused.value)
    tls_broker.wait_for_log(r"login refused.*user=nobody.*EXTERNAL")


def test_external_is_not_offered_without_a_certificate(tls_broker, pki):
    params = amqps_params(tls_broker, pki, credentials=pika.credentials.ExternalCredentials())
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(params)


def test_aio_pika_over_amqps(tls_broker, pki):
    host, port = ready_addr(tls_broker, "amqps")

    async def main():
        conn = await aio_pika.connect(
            host="localhost", port=port, ssl=True, ssl_context=client_context(pki), timeout=10,
        )
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue("", exclusive=True)
            await ch.default_exchange.publish(aio_pika.Message(b"over tls"), routing_key=q.name)
            msg = await q.get(timeout=5)
            await msg.ack()
            return msg.body

    assert asyncio.run(asyncio.wait_for(main(), 30)) == b"over tls"


def test_confluent_kafka_sasl_ssl_scram_sha_512(tls_broker, pki):
    topic = f"tls-{uuid.uuid4().hex[:6]}"
    conf = {
        "bootstrap.servers": kafka_listeners(tls_broker)["SASL_SSL"],
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": pki.ca,
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
    }
    producer = Producer(conf)
    for i in range(100):
        producer.produce(topic, key=b"k", value=f"v{i}".encode())
    assert producer.flush(20) == 0
    consumer = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    for _ in range(200):
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.append(msg.value().decode())
        if len(got) == 100:
            break
    consumer.close()
    assert got == [f"v{i}" for i in range(100)]


def test_aiokafka_over_ssl_with_a_client_certificate(tls_broker, pki):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"aiotls-{uuid.uuid4().hex[:6]}"
    bootstrap = kafka_listeners(tls_broker)["SSL"]

    async def main():
        ctx = client_context(pki, cert="alice")
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_context=ctx)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, f"a{i}".encode())
            principals = {r["user"] for r in connections(tls_broker) if r["protocol"] == "Kafka"}
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, security_protocol="SSL",
                                    ssl_context=ctx, auto_offset_reset="earliest")
        await consumer.start()
        try:
            got = [ (await consumer.getone()).value.decode() for _ in range(10)]
        finally:
            await consumer.stop()
        return principals, got

    principals, got = asyncio.run(asyncio.wait_for(main(), 60))
    assert got == [f"a{i}" for i in range(10)]
    # Kafka's principal for a client certificate is its subject (RFC 2253).
    assert principals == {"CN=alice,O=ferrymq tests"}


def test_kcat_over_sasl_ssl(tls_broker, pki):
    kcat = require_kcat()
    topic = f"kcat-tls-{uuid.uuid4().hex[:6]}"
    common = [
        kcat, "-b", kafka_listeners(tls_broker)["SASL_SSL"],
        "-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={pki.ca}",
        "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice",
        "-X", "sasl.password=alice-secret",
    ]
    produced = subprocess.run([*common, "-P", "-t", topic], input="one\ntwo\nthree\n",
                              capture_output=True, text=True, timeout=30)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run([*common, "-C", "-t", topic, "-o", "beginning", "-c", "3", "-e"],
                              capture_output=True, text=True, timeout=30)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == ["one", "two", "three"]


def test_the_management_api_over_https(tls_broker, pki):
    host, port = ready_addr(tls_broker, "https")
    r = requests.get(f"https://localhost:{port}/api/overview", auth=("guest", "guest"), verify=pki.ca, timeout=10)
    assert r.status_code == 200
    assert r.json()["product_name"]
    listeners = {l["protocol"] for l in r.json()["listeners"]}
    assert {"amqp/ssl", "https"} <= listeners


def tls_refused(host, port, ctx, server_hostname="localhost"):
    """True if the handshake, or the first read after it, fails (TLS 1.3 reports a refused
    client certificate after the client's handshake has finished)."""
    with socket.create_connection((host, port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                tls.sendall(b"AMQP\x00\x00\x09\x01")
                return tls.recv(1) == b""
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return True


@pytest.mark.parametrize("cert", ["untrusted", "expired"])
def test_bad_client_certificates_are_refused_and_logged(tls_broker, pki, cert):
    host, port = ready_addr(tls_broker, "amqps")
    assert tls_refused(host, port, client_context(pki, cert=cert))
    tls_broker.wait_for_log(r"TLS connection refused.*peer=127\.0\.0\.1.*listener=\"?amqps")
    # Others are served all along.
    pika.BlockingConnection(amqps_params(tls_broker, pki)).close()


def test_required_client_certificates(make_broker, pki):
    b = secure_broker(make_broker, ("SSL",), env=tls_env(pki, client_auth="required"))
    host, port = ready_addr(b, "amqps")
    assert tls_refused(host, port, client_context(pki))
    with pika.BlockingConnection(amqps_params(b, pki, cert="alice")):
        pass
    kafka_host, kafka_port = kafka_listeners(b)["SSL"].rsplit(":", 1)
    assert tls_refused(kafka_host, int(kafka_port), client_context(pki))


def test_tls_below_1_2_is_refused(tls_broker, pki):
    host, port = ready_addr(tls_broker, "amqps")
    ctx = client_context(pki)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    assert tls_refused(host, port, ctx)
    ctx12 = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection((host, port), timeout=5) as raw, ctx12.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"


def test_a_plaintext_client_on_a_tls_port_is_refused(tls_broker, pki):
    host, port = ready_addr(tls_broker, "amqps")
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        try:
            assert sock.recv(64) == b""
        except ConnectionResetError:
            pass  # closed with the header unread: the kernel resets
    tls_broker.wait_for_log(r"TLS connection refused.*not a TLS client.*AMQP")
    kafka = kafka_listeners(tls_broker)["SSL"]
    with pytest.raises(Exception):
        Producer({"bootstrap.servers": kafka, "socket.timeout.ms": 3000}).list_topics(timeout=3)


def test_a_stalled_handshake_is_dropped(make_broker, pki):
    b = secure_broker(make_broker, (), env=tls_env(pki, handshake_ms=300))
    host, port = ready_addr(b, "amqps")
    with socket.create_connection((host, port), timeout=10) as sock:
        assert sock.recv(64) == b""  # closed by the broker, long before the 10 s timeout
    b.wait_for_log(r"TLS connection refused.*not finished within 300ms")


def served_certificate(host, port):
    with socket.create_connection((host, port), timeout=5) as raw:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


@pytest.mark.parametrize("trigger", ["file change", "SIGHUP"])
def test_certificates_are_reloaded_without_a_restart(make_broker, tmp_path, trigger):
    from cryptography.hazmat.primitives import serialization

    pki = make_pki(tmp_path / "pki")
    reload_ms = 100 if trigger == "file change" else 0
    b = secure_broker(make_broker, (), env=tls_env(pki, reload_ms=reload_ms))
    host, port = ready_addr(b, "amqps")
    before = served_certificate(host, port)
    new = pki.reissue_server().public_bytes(serialization.Encoding.DER)
    if trigger == "SIGHUP":
        b.proc.send_signal(signal.SIGHUP)
    b.wait_for_log("TLS certificates reloaded", timeout=10)
    after = served_certificate(host, port)
    assert after != before and after == new
    pika.BlockingConnection(amqps_params(b, pki)).close()


def test_a_broken_certificate_file_keeps_the_previous_certificates(make_broker, tmp_path):
    pki = make_pki(tmp_path / "pki")
    b = secure_broker(make_broker, (), env=tls_env(pki, reload_ms=100))
    host, port = ready_addr(b, "amqps")
    before = served_certificate(host, port)
    (tmp_path / "pki" / "server.pem").write_text("not a certificate\n")
    b.wait_for_log("TLS certificates not reloaded", timeout=10)
    assert served_certificate(host, port) == before


@pytest.mark.parametrize("env, message", [
    ({"FERRYMQ_AMQP_TLS_ENABLED": "true"}, "tls.certfile"),
    ({"FERRYMQ_KAFKA_LISTENERS": '["SSL://127.0.0.1:0"]'}, "tls.certfile"),
    ({"FERRYMQ_HTTP_TLS_ENABLED": "true", "FERRYMQ_TLS_CERTFILE": "/nonexistent.pem",
      "FERRYMQ_TLS_KEYFILE": "/nonexistent.key"}, "cannot read tls.certfile /nonexistent.pem"),
])
def test_a_tls_listener_without_certificates_refuses_to_start(tmp_path, env, message):
    import os

    proc = subprocess.run(
        [_binary(), "--data-dir", str(tmp_path / "data"), "--amqp-listen", "127.0.0.1:0",
         "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout, proc.stderr
