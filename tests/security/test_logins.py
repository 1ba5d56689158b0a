"""Login hygiene: failed logins rate-limited per client address (AMQP, Kafka SASL and the
management API share one limit), the default user from FERRYMQ_DEFAULT_USER and
FERRYMQ_DEFAULT_PASS (RabbitMQ's image has RABBITMQ_DEFAULT_USER/PASS), the warning when the
broker listens beyond loopback with only loopback users, and guest's loopback-only login."""

import base64
import http.client
import os
import subprocess

import pika
import pytest

from conftest import _binary
from sec_util import add_user

LIMIT = 10  # ferrymq_auth::limiter::MAX_FAILURES within 10 s


def http_status(broker, user, password, source="127.0.0.1"):
    conn = http.client.HTTPConnection("127.0.0.1", broker.http[1], timeout=10, source_address=(source, 0))
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn.request("GET", "/api/whoami", headers={"Authorization": f"Basic {token}"})
    status = conn.getresponse().status
    conn.close()
    return status


def amqp_login(broker, user, password):
    params = pika.URLParameters(f"amqp://{user}:{password}@127.0.0.1:{broker.amqp[1]}/%2F")
    params.connection_attempts = 1
    pika.BlockingConnection(params).close()


def test_failed_logins_are_rate_limited_per_address_across_protocols(make_broker):
    b = make_broker()
    add_user(b, "alice", "right")
    for _ in range(LIMIT):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            amqp_login(b, "alice", "wrong")
    # From this address even the right password is refused now, over AMQP and HTTP...
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_login(b, "alice", "right")
    assert http_status(b, "alice", "right") == 401
    b.wait_for_log("too many failed logins")
    # ...while another client address is served as before.
    assert http_status(b, "guest", "guest", source="127.0.0.2") == 200


def test_the_default_user_comes_from_the_environment(make_broker):
    b = make_broker(env={"FERRYMQ_DEFAULT_USER": "admin", "FERRYMQ_DEFAULT_PASS": "s3cret"})
    assert http_status(b, "admin", "s3cret") == 200
    amqp_login(b, "admin", "s3cret")
    # guest is not created, as with RabbitMQ's image.
    assert http_status(b, "guest", "guest") == 401
    assert not any("ignoring environment variable FERRYMQ_DEFAULT" in l for l in b.output)


def test_a_default_user_without_a_password_refuses_to_start(tmp_path):
    proc = subprocess.run(
        [_binary(), "--data-dir", str(tmp_path / "data"), "--amqp-listen", "127.0.0.1:0",
         "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
        env={**os.environ, "FERRYMQ_DEFAULT_USER": "admin"}, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert "FERRYMQ_DEFAULT_PASS" in proc.stderr


def test_listening_beyond_loopback_with_only_guest_warns(make_broker):
    b = make_broker(env={"FERRYMQ_KAFKA_LISTENERS": '["PLAINTEXT://0.0.0.0:0"]'})
    b.wait_for_log("listening beyond loopback, but every user may log in from loopback only")
    quiet = make_broker(name="quiet")
    assert not any("listening beyond loopback" in l for l in quiet.output)
