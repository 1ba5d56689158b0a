"""Helpers and fixtures for the management-API tests.

Test modules import what they use from here by name (fixtures included), as the AMQP tests do
with amqp_helpers: a second conftest.py would shadow the suite's root one.

- `Api`: a small client for the HTTP API (requests with basic auth), and `raw()` for requests
  whose path must reach the server byte for byte (requests normalises `%2E` to `.`; tools such
  as rabbitmqadmin encode every character).
- `rabbitmq_mgmt`: one real RabbitMQ (Debian's rabbitmq-server) with its management plugin per
  session, for differential tests.
- `tool()`: the external tools `scripts/install-test-tools` installs (rabbitmqadmin, promtool,
  chromium, chromedriver). A missing tool skips the test locally and fails it under CI=true.
- `unique()`, `wait_until()`: per-test names and bounded polling.
- `scrape()`, `Exposition`, `promtool_check()`: Prometheus text, parsed, and linted.
- `amqp_connect()`, `publish()`, `Deliveries`: pika traffic; `amqp_url_as()`: a broker's AMQP
  URL as another user and vhost; `definitions_about()`: a definitions document's entries about
  some names; `kafka_producer()`, `produce()`,
  `kafka_consumer()`, `consume()`, `commit()`: confluent-kafka traffic.
"""

import http.client
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent.parent
TOOLS_CACHE = Path(
    os.environ.get("FERRYMQ_TOOLS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ferrymq-tools"
)


def amqp_url_as(amqp_url: str, user: str, password: str, vhost: str = "/") -> str:
    """`amqp_url` (amqp://guest:guest@host:port/%2F) for another user and vhost."""
    from urllib.parse import urlsplit

    parts = urlsplit(amqp_url)
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}/{seg(vhost)}"


# The keys RabbitMQ 3.10 exports for each kind of definition (ferrymq may export more, such as
# vhost descriptions): what a definitions round trip must keep.
DEFINITION_KEYS = {
    "users": ("name", "password_hash", "hashing_algorithm", "tags", "limits"),
    "vhosts": ("name",),
    "permissions": ("user", "vhost", "configure", "write", "read"),
    "queues": ("name", "vhost", "durable", "auto_delete", "arguments"),
    "exchanges": ("name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"),
    "bindings": ("source", "vhost", "destination", "destination_type", "routing_key", "arguments"),
}


def definitions_about(document: dict, names) -> dict:
    """The entries of a definitions document that mention one of `names`, by kind, in the keys
    of DEFINITION_KEYS ("<missing>" for a key an entry lacks)."""
    mentions = lambda entry: any(n in json.dumps(entry) for n in names)
    return {
        kind: [{k: entry.get(k, "<missing>") for k in keys}
               for entry in document.get(kind, []) if mentions(entry)]
        for kind, keys in DEFINITION_KEYS.items()
    }


def seg(name: str) -> str:
    """One path segment, percent-encoded as RabbitMQ's clients do (`/` -> `%2F`)."""
    return quote(name, safe="")


class Api:
    """The management API of one broker (ferrymq or RabbitMQ)."""

    def __init__(self, base_url: str, user: str = "guest", password: str = "guest"):
        self.base = base_url.rstrip("/")
        self.auth = (user, password)

    def as_user(self, user: str, password: str) -> "Api":
        return Api(self.base, user, password)

    def request(self, method: str, path: str, json_body=None, data=None, headers=None,
                params=None, auth=True, timeout: float = 10.0) -> requests.Response:
        return requests.request(
            method, self.base + path, json=json_body, data=data, headers=headers,
            params=params, auth=self.auth if auth else None, timeout=timeout,
        )

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def put(self, path: str, body=None, **kw):
        return self.request("PUT", path, json_body={} if body is None else body, **kw)

    def post(self, path: str, body=None, **kw):
        return self.request("POST", path, json_body={} if body is None else body, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, **kw)

    def json(self, path: str, **kw):
        r = self.get(path, **kw)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    def raw(self, method: str, path: str, body: bytes | None = None, headers=None):
        """A request whose path is sent exactly as given. Returns (status, headers, body)."""
        host, _, port = self.base.removeprefix("http://").partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        import base64

        token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        all_headers = {"Authorization": f"Basic {token}", **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, dict(resp.getheaders()), data

    def queue(self, vhost: str, name: str) -> dict:
        return self.json(f"/api/queues/{seg(vhost)}/{seg(name)}")

    def wait_for(self, path: str, predicate, timeout: float = 15.0, interval: float = 0.1):
        """Polls GET `path` until `predicate(json)` holds (bounded); returns the last JSON."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = self.get(path)
            if r.status_code == 200:
                last = r.json()
                if predicate(last):
                    return last
            time.sleep(interval)
        raise AssertionError(f"GET {path} never satisfied the condition; last: {json.dumps(last)[:2000]}")


def ferrymq_api(broker) -> Api:
    return Api(broker.http_url)


def tool(name: str) -> str:
    """Path of an external test tool; skips (or fails under CI=true) when it is missing."""
    if name == "rabbitmqadmin":
        path = TOOLS_CACHE / "bin" / "rabbitmqadmin"
        found = str(path) if path.exists() else shutil.which("rabbitmqadmin")
    else:
        found = shutil.which(name)
    if not found:
        message = f"{name} is not installed (scripts/install-test-tools installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def rabbitmq_mgmt():
    """A real RabbitMQ with rabbitmq_management, for differential tests (one per session)."""
    from peers import RabbitMQ, rabbitmq_available

    if not rabbitmq_available():
        if os.environ.get("CI") == "true":
            pytest.fail("rabbitmq-server is not installed (make test installs it)")
        pytest.skip("rabbitmq-server is not installed (make test installs it)")
    # Generous: its management plugin starts in 10-20 s on a loaded 2-core machine.
    peer = RabbitMQ(management=True, stats_interval_ms=500).start(timeout=180)
    yield peer
    peer.stop()



# -- names and waits ---------------------------------------------------------------------------
_counter = itertools.count()

# Kafka's default makes the first rebalance of a group wait 3 s for more members.
FAST_GROUPS = {"FERRYMQ_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0"}


def unique(prefix: str) -> str:
    """A name no other test uses, legal as a queue, topic and group name."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.1, message="condition"):
    """Polls `predicate()` until it returns something truthy (bounded); returns that value.
    `message` may be a callable, evaluated on timeout to describe the last state."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (not met within {timeout}s)")
        time.sleep(interval)


# -- Prometheus text exposition ----------------------------------------------------------------
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict
    value: float


class Exposition:
    """One scrape: its raw text and parsed samples."""

    def __init__(self, text: str, content_type: str = ""):
        self.text = text
        self.content_type = content_type
        self.samples = []
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
            elif line and not line.startswith("#"):
                match = _SAMPLE.match(line)
                assert match, f"unparsable exposition line: {line!r}"
                name, labels, value = match.groups()
                parsed = {k: _unescape(v) for k, v in _LABEL.findall(labels or "")}
                self.samples.append(Sample(name, parsed, float(value)))

    def series(self, name: str, **labels) -> list:
        """Samples of `name` whose labels include `labels`."""
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels) -> float | None:
        """The one sample of `name` with exactly these labels (None when absent)."""
        found = [s for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, f"{len(found)} samples of {name}{labels}"
        return found[0].value if found else None

    def keys(self) -> set:
        """Every series as (name, sorted labels): what a scrape exposes, not its values."""
        return {(s.name, tuple(sorted(s.labels.items()))) for s in self.samples}


def scrape(base_url: str, path: str = "/metrics") -> Exposition:
    """GET a metrics page without credentials, as Prometheus does."""
    r = requests.get(base_url.rstrip("/") + path, timeout=10)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:500]}"
    return Exposition(r.text, r.headers.get("Content-Type", ""))


def promtool_check(text: str) -> subprocess.CompletedProcess:
    """`promtool check metrics` on an exposition (exit 0 and no output: no lint problems)."""
    return subprocess.run([tool("promtool"), "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=30)


# -- AMQP traffic (pika) -----------------------------------------------------------------------
def amqp_connect(broker, connection_name: str | None = None, vhost: str = "/"):
    import pika

    params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{broker.amqp[1]}/{seg(vhost)}")
    if connection_name:
        params.client_properties = {"connection_name": connection_name}
    return pika.BlockingConnection(params)


def publish(channel, queue: str, count: int, body: bytes = b"payload"):
    """Publishes `count` persistent messages to `queue` via the default exchange. With
    publisher confirms on the channel (`confirm_delivery()`), each is confirmed on return."""
    import pika

    props = pika.BasicProperties(delivery_mode=2)
    for i in range(count):
        channel.basic_publish("", queue, body + b"-%d" % i, props)


class Deliveries:
    """A manual-ack consumer on `queue` that collects deliveries as the connection is pumped."""

    def __init__(self, connection, channel, queue: str, prefetch: int):
        self.connection, self.channel = connection, channel
        self.tags: list[int] = []
        channel.basic_qos(prefetch_count=prefetch)
        self.consumer_tag = channel.basic_consume(queue, self._on_message, auto_ack=False)

    def _on_message(self, _channel, method, _props, _body):
        self.tags.append(method.delivery_tag)

    def pump_until(self, count: int, timeout: float = 10.0) -> list[int]:
        """Processes I/O until `count` deliveries have arrived in total (bounded)."""
        deadline = time.monotonic() + timeout
        while len(self.tags) < count and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.05)
        assert len(self.tags) >= count, f"{len(self.tags)} of {count} deliveries in {timeout}s"
        return self.tags

    def ack_all(self):
        for tag in self.tags:
            self.channel.basic_ack(tag)
        self.tags = []


def publish_confirmed(broker, queue: str, count: int, vhost: str = "/", declare: bool = True):
    """Declares durable `queue` (unless told not to) and publishes `count` messages with
    publisher confirms, on a connection of its own."""
    connection = amqp_connect(broker, vhost=vhost)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        if declare:
            channel.queue_declare(queue, durable=True)
        publish(channel, queue, count)
    finally:
        connection.close()


def drain(broker, queue: str, count: int, timeout: float = 10.0, vhost: str = "/"):
    """Consumes and acks `count` messages of `queue` on a connection of its own."""
    connection = amqp_connect(broker, vhost=vhost)
    try:
        channel = connection.channel()
        deliveries = Deliveries(connection, channel, queue, prefetch=count)
        deliveries.pump_until(count, timeout)
        # Cancelled before the acks, so nothing more is delivered (and requeued on close).
        channel.basic_cancel(deliveries.consumer_tag)
        deliveries.ack_all()
    finally:
        connection.close()


# -- Kafka traffic (confluent-kafka) -----------------------------------------------------------
def kafka_producer(broker, **conf):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": "all", **conf})


def produce(broker, topic: str, count: int, partition: int = 0, producer=None):
    """Produces `count` records to `topic` (auto-created) and waits until all are acknowledged."""
    own = producer or kafka_producer(broker)
    errors = []
    for i in range(count):
        own.produce(topic, value=b"record-%d" % i, key=b"k%d" % i, partition=partition,
                    on_delivery=lambda err, _msg: err and errors.append(err))
    left = own.flush(20)
    assert left == 0 and not errors, f"{left} records undelivered, errors: {errors}"
    return own


def kafka_consumer(broker, group: str, topic: str, **conf):
    """A group member subscribed to `topic` that commits only when told (`commit()`)."""
    from confluent_kafka import Consumer

    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": group + "-client",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, **conf,
    })
    consumer.subscribe([topic])
    return consumer


def consume(consumer, count: int, timeout: float = 30.0) -> list:
    """Polls until `count` records arrived (bounded); returns them."""
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, f"consumer error: {msg.error()}"
        records.append(msg)
    assert len(records) == count, f"{len(records)} of {count} records in {timeout}s"
    return records


def commit(consumer, topic: str, offset: int, partition: int = 0):
    """Commits `offset` (the next record to read) synchronously."""
    from confluent_kafka import TopicPartition

    result = consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    assert all(tp.error is None for tp in result), f"commit failed: {result}"
