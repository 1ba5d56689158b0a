"""Kafka SASL on SASL_PLAINTEXT listeners, with stock clients: confluent-kafka (librdkafka)
with PLAIN and SCRAM, kafka-python with SCRAM-SHA-256, and the refusals Kafka gives (wrong
password, unknown mechanism, requests before authentication), re-authentication (KIP-368)
and the SCRAM credential APIs. One user store: a user created over the management API logs in
over Kafka with the same password, and SCRAM credentials set over Kafka work over AMQP too."""

import socket
import struct
import uuid

import pika
import pytest
import requests
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from sec_util import add_user, kafka_listeners, secure_broker, wait_until


@pytest.fixture
def sasl_broker(make_broker):
    b = secure_broker(make_broker, ("SASL_PLAINTEXT",))
    add_user(b, "alice", "alice-secret")
    return b


def sasl_conf(broker, mechanism, user="alice", password="alice-secret"):
    return {
        "bootstrap.servers": kafka_listeners(broker)["SASL_PLAINTEXT"],
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def round_trip(conf, topic, count=20):
    producer = Producer(conf)
    for i in range(count):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(20) == 0
    consumer = Consumer({**conf, "group.id": f"g-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    try:
        deadline_polls = 200
        while len(got) < count and deadline_polls:
            deadline_polls -= 1
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            got.append(msg.value().decode())
    finally:
        consumer.close()
    assert got == [f"v{i}" for i in range(count)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_confluent_kafka_authenticates_and_round_trips(sasl_broker, mechanism):
    topic = f"sasl-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    round_trip(sasl_conf(sasl_broker, mechanism), topic)
    sasl_broker.wait_for_log(f"Kafka client authenticated.*user=\"?alice\"?.*mechanism=\"?{mechanism}")
    # The connection listing shows the principal and mechanism.
    rows = requests.get(f"{sasl_broker.http_url}/api/connections", auth=("guest", "guest"), timeout=10).json()
    assert not [r for r in rows if r["protocol"].startswith("Kafka") and r["user"] not in ("alice", "ANONYMOUS")]


def test_kafka_python_scram_sha_256(sasl_broker):
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"sasl-kp-{uuid.uuid4().hex[:6]}"
    common = dict(
        bootstrap_servers=kafka_listeners(sasl_broker)["SASL_PLAINTEXT"],
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username="alice",
        sasl_plain_password="alice-secret",
    )
    producer = KafkaProducer(**common)
    for i in range(5):
        producer.send(topic, f"m{i}".encode()).get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **common)
    got = [m.value.decode() for _, m in zip(range(5), consumer)]
    consumer.close()
    assert got == [f"m{i}" for i in range(5)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_a_wrong_password_is_refused_and_logged_with_the_peer(sasl_broker, mechanism):
    errors = []
    conf = {**sasl_conf(sasl_broker, mechanism, password="wrong"), "error_cb": errors.append}
    producer = Producer(conf)
    # librdkafka reports the broker's SASL_AUTHENTICATION_FAILED as an authentication error.
    auth = lambda: [e for e in errors if e.code() == -169]  # _AUTHENTICATION
    wait_until(lambda: producer.poll(0.1) is not None and auth(), timeout=10, message="an authentication error")
    auth = auth()
    assert "Authentication failed" in auth[0].str(), auth[0]
    sasl_broker.wait_for_log(r"Kafka SASL authentication failed.*peer=127\.0\.0\.1")


def test_an_unknown_user_is_refused(sasl_broker):
    admin = AdminClient(sasl_conf(sasl_broker, "SCRAM-SHA-256", user="mallory", password="x"))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)


def kafka_request(sock, api_key, version, correlation, body: bytes):
    client = b"raw"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)


def read_response(sock):
    """One response frame without its size, or None if the broker closed the connection."""
    stream = sock.makefile("rb")
    size = stream.read(4)
    return stream.read(struct.unpack(">i", size)[0]) if len(size) == 4 else None


def test_an_unknown_mechanism_is_answered_with_the_enabled_list(sasl_broker):
    host, port = kafka_listeners(sasl_broker)["SASL_PLAINTEXT"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        mech = b"GSSAPI"
        kafka_request(sock, 17, 1, 7, struct.pack(">h", len(mech)) + mech)
        body = read_response(sock)
        correlation, error, count = struct.unpack(">ihi", body[:10])
        assert (correlation, error) == (7, 33)  # UNSUPPORTED_SASL_MECHANISM
        names, rest = [], body[10:]
        for _ in range(count):
            (n,) = struct.unpack(">h", rest[:2])
            names.append(rest[2 : 2 + n].decode())
            rest = rest[2 + n :]
        assert names == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def test_requests_before_authentication_close_the_connection(sasl_broker):
    host, port = kafka_listeners(sasl_broker)["SASL_PLAINTEXT"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        kafka_request(sock, 3, 1, 1, struct.pack(">i", -1))  # Metadata v1, all topics
        assert read_response(sock) is None
    sasl_broker.wait_for_log("request before SASL authentication")
    # The plaintext listener of the same broker still serves without SASL.
    Producer({"bootstrap.servers": kafka_listeners(sasl_broker)["PLAINTEXT"]}).list_topics(timeout=10)


def test_sessions_are_re_authenticated(make_broker):
    b = secure_broker(make_broker, ("SASL_PLAINTEXT",), env={"FERRYMQ_KAFKA_CONNECTIONS_MAX_REAUTH_MS": "1500"})
    add_user(b, "alice", "alice-secret")
    topic = f"reauth-{uuid.uuid4().hex[:6]}"
    producer = Producer(sasl_conf(b, "SCRAM-SHA-256"))
    delivered = []
    sent = 0

    def reauthenticated():
        nonlocal sent
        producer.produce(topic, f"m{sent}".encode(), on_delivery=lambda e, m: delivered.append(e))
        sent += 1
        producer.flush(5)
        return any("Kafka client re-authenticated" in line for line in b.output)

    wait_until(reauthenticated, timeout=20, interval=0.2, message="a re-authentication")
    assert producer.flush(10) == 0
    assert delivered == [None] * sent
    assert not any("request before SASL authentication" in line for line in b.output)


def test_scram_credentials_are_described_and_altered_over_kafka(sasl_broker):
    admin = AdminClient({"bootstrap.servers": kafka_listeners(sasl_broker)["PLAINTEXT"]})
    described = admin.describe_user_scram_credentials(["alice"])["alice"].result()
    mechanisms = sorted(str(c.mechanism) for c in described.scram_credential_infos)
    assert mechanisms == ["ScramMechanism.SCRAM_SHA_256", "ScramMechanism.SCRAM_SHA_512"]
    assert {c.iterations for c in described.scram_credential_infos} == {4096}

    # A new SCRAM-SHA-512 credential for a new user: it logs in with it over Kafka.
    add_user(sasl_broker, "bob", "initial")
    upsert = UserScramCredentialUpsertion(
        "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"bob-scram", b"salt-of-bob"
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result()
    round_trip(sasl_conf(sasl_broker, "SCRAM-SHA-512", "bob", "bob-scram"), f"bob-{uuid.uuid4().hex[:6]}", 3)
    # Deleting it refuses that mechanism from then on.
    deletion = UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_512)
    for future in admin.alter_user_scram_credentials([deletion]).values():
        future.result()
    with pytest.raises(KafkaException):
        AdminClient(sasl_conf(sasl_broker, "SCRAM-SHA-512", "bob", "bob-scram")).list_topics(timeout=5)
    # Unknown users are an error per user.
    with pytest.raises(KafkaException):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result()


def test_one_user_store_serves_amqp_and_kafka(sasl_broker):
    add_user(sasl_broker, "carol", "carol-pw")
    AdminClient(sasl_conf(sasl_broker, "PLAIN", "carol", "carol-pw")).list_topics(timeout=10)
    params = pika.URLParameters(f"amqp://carol:carol-pw@127.0.0.1:{sasl_broker.amqp[1]}/%2F")
    pika.BlockingConnection(params).close()


def test_a_v0_handshake_is_followed_by_bare_sasl_tokens(sasl_broker):
    """SaslHandshake v0 (clients before SaslAuthenticate): the token travels without a
    request header, and so does the broker's reply; a wrong password closes the connection."""
    host, port = kafka_listeners(sasl_broker)["SASL_PLAINTEXT"].rsplit(":", 1)
    for password, accepted in [(b"alice-secret", True), (b"wrong", False)]:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            kafka_request(sock, 17, 0, 1, struct.pack(">h", 5) + b"PLAIN")
            assert struct.unpack(">ih", read_response(sock)[:6]) == (1, 0)
            token = b"\x00alice\x00" + password
            sock.sendall(struct.pack(">i", len(token)) + token)
            reply = read_response(sock)
            if not accepted:
                assert reply is None
                continue
            assert reply == b""
            kafka_request(sock, 3, 1, 2, struct.pack(">i", -1))  # Metadata v1 now served
            assert struct.unpack(">i", read_response(sock)[:4]) == (2,)


def test_a_client_that_never_authenticates_is_dropped(make_broker):
    b = secure_broker(make_broker, ("SASL_PLAINTEXT",), env={"FERRYMQ_KAFKA_AUTHENTICATION_TIMEOUT_MS": "300"})
    host, port = kafka_listeners(b)["SASL_PLAINTEXT"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        assert sock.recv(16) == b""  # closed by the broker, long before the 10 s timeout
    b.wait_for_log(r"no SASL authentication within 300ms")
