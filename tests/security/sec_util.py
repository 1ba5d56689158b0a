"""Helpers for the security tests: brokers with extra Kafka listeners, users created through
the management API, and (in `certs`) certificates generated for the test session.

- `kafka_listeners(broker)`: {listener name: "127.0.0.1:port"} from the log lines ferrymq
  prints for each Kafka listener it binds.
- `secure_broker(make_broker, listeners, env)`: a broker whose `kafka.listeners` are
  `listeners` (each bound to port 0 on loopback).
- `ready_addr(broker, "amqps")`, `tls_env(pki)`: the TLS listeners' addresses, and the
  variables that turn them on.
- `add_user(broker, name, password, tags)`: a user with full permissions on "/".
"""

import json
import re
import shutil

import pytest

import requests

from conftest import wait_until  # noqa: F401 (re-exported)

LISTENER_LINE = re.compile(r"kafka listener on (\S+) tells clients .* listener=(\w+)")


def kafka_listeners(broker) -> dict:
    found = {}
    for line in broker.output:
        match = LISTENER_LINE.search(line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def ready_addr(broker, name) -> tuple[str, int]:
    """An address the ready line names beyond amqp/kafka/http (`amqps`, `https`)."""
    for line in broker.output:
        match = re.search(rf"ferrymq ready .* {name}=(\S+)", line)
        if match:
            host, _, port = match.group(1).rpartition(":")
            return host, int(port)
    raise AssertionError(f"no {name}= in the ready line")


def tls_env(pki, client_auth="optional", **kw) -> dict:
    """Variables for a broker with amqps and https on loopback, serving `pki`'s server cert."""
    return {
        **pki.server_settings(client_auth=client_auth, **kw),
        "FERRYMQ_AMQP_TLS_ENABLED": "true",
        "FERRYMQ_AMQP_TLS_LISTEN": "127.0.0.1:0",
        "FERRYMQ_HTTP_TLS_ENABLED": "true",
        "FERRYMQ_HTTP_TLS_LISTEN": "127.0.0.1:0",
    }


def secure_broker(make_broker, listeners=("SASL_PLAINTEXT",), env=None, args=(), name="data"):
    specs = ["PLAINTEXT://127.0.0.1:0"] + [f"{n}://127.0.0.1:0" for n in listeners]
    env = {
        "FERRYMQ_KAFKA_LISTENERS": json.dumps(specs),
        "FERRYMQ_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        **(env or {}),
    }
    return make_broker(env=env, args=args, name=name)


def add_user(broker, name, password, tags="", vhost="/"):
    api = f"{broker.http_url}/api"
    auth = ("guest", "guest")
    r = requests.put(f"{api}/users/{name}", json={"password": password, "tags": tags}, auth=auth, timeout=10)
    assert r.status_code in (201, 204), r.text
    r = requests.put(
        f"{api}/permissions/{requests.utils.quote(vhost, safe='')}/{name}",
        json={"configure": ".*", "write": ".*", "read": ".*"}, auth=auth, timeout=10,
    )
    assert r.status_code in (201, 204), r.text


def require_kcat() -> str:
    """Debian's kcat (make test installs it)."""
    path = shutil.which("kcat")
    if not path:
        pytest.skip("kcat is not installed (make test installs it)")
    return path
