"""RabbitMQ's configure/write/read permissions and topic permissions, as a matrix: the same
user, patterns and AMQP operations against ferrymq and Debian's RabbitMQ, which must agree on
every outcome (done, or the channel closed with 403 and the same reply text).

Users and objects are made through each broker's management API, as guest; the operations
run over pika as the restricted user."""

import re

import pika
import pytest

from mgmt import Api, amqp_url_as, rabbitmq_mgmt, seg, unique  # noqa: F401 (fixture)

pytestmark = pytest.mark.rabbitmq

PASSWORD = "pw"
# A user may configure cfg.*, write wr.*, read rd.* (RabbitMQ does not anchor patterns).
PATTERNS = {"configure": "^cfg\\.", "write": "^wr\\.", "read": "^rd\\."}
EXCHANGES = {"wr.x": "direct", "rd.x": "direct", "cfg.x": "direct", "rd.t": "topic",
             "wr.rd.x": "direct", "other.x": "direct"}
QUEUES = ["wr.q", "rd.q", "cfg.q", "other.q", "wr.rd.q"]


class Broker:
    """One broker with the test's user and objects (suffixed per broker run)."""

    def __init__(self, name: str, http_url: str, amqp_url: str):
        self.name, self.api, self.amqp_url = name, Api(http_url), amqp_url
        self.user = unique("perm")
        assert self.api.put(f"/api/users/{self.user}", {"password": PASSWORD, "tags": ""}).status_code == 201
        assert self.api.put(f"/api/permissions/%2F/{self.user}", PATTERNS).status_code == 201
        topic = {"exchange": "rd.t", "write": "^allowed\\.", "read": "^allowed\\."}
        assert self.api.put(f"/api/topic-permissions/%2F/{self.user}", topic).status_code in (201, 204)
        for name, kind in EXCHANGES.items():
            assert self.api.put(f"/api/exchanges/%2F/{name}", {"type": kind}).status_code in (201, 204)
        for name in QUEUES:
            assert self.api.put(f"/api/queues/%2F/{name}", {}).status_code in (201, 204)

    def outcome(self, operation) -> str | tuple:
        """Runs `operation(channel)` as the user: "ok", or the channel close (code, text)."""
        conn = pika.BlockingConnection(pika.URLParameters(
            amqp_url_as(self.amqp_url, self.user, PASSWORD)))
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            operation(ch)
            # A round trip after the operation, so an asynchronous refusal has arrived.
            ch.basic_qos(prefetch_count=1)
            return "ok"
        except pika.exceptions.ChannelClosedByBroker as closed:
            text = closed.reply_text.replace(self.user, "<user>")
            return closed.reply_code, re.sub(r"amq\.gen-[\w-]*", "amq.gen-*", text)
        finally:
            if conn.is_open:
                conn.close()

    def cleanup(self):
        self.api.delete(f"/api/users/{self.user}")


@pytest.fixture(scope="module")
def brokers(shared_broker, rabbitmq_mgmt):
    made = [Broker("ferrymq", shared_broker.http_url, shared_broker.amqp_url),
            Broker("rabbitmq", rabbitmq_mgmt.http_url, rabbitmq_mgmt.amqp_url)]
    yield made
    for b in made:
        b.cleanup()


def publish(exchange: str, key: str):
    return lambda ch: ch.basic_publish(exchange, key, b"m")


def consume(queue: str):
    return lambda ch: ch.basic_consume(queue, lambda *a: None)


# Names the operations create: the same on both brokers, fresh per test run.
RUN = unique("run")

# (case, operation, the outcome both must give). Fresh names where the operation creates or
# deletes, so cases do not depend on each other.
CASES = [
    ("declare a queue it may configure", lambda ch: ch.queue_declare(f"cfg.new-{RUN}"), "ok"),
    ("declare a queue it may not configure", lambda ch: ch.queue_declare(f"wr.new-{RUN}"), 403),
    ("declare passively a queue it may not configure", lambda ch: ch.queue_declare("other.q", passive=True), "ok"),
    ("declare a server-named queue", lambda ch: ch.queue_declare(""), 403),
    ("declare a queue with a dead-letter exchange it may not write",
     lambda ch: ch.queue_declare(f"cfg.dlx-{RUN}", arguments={"x-dead-letter-exchange": "other.x"}), 403),
    ("delete a queue it may not configure", lambda ch: ch.queue_delete("rd.q"), 403),
    ("declare an exchange it may configure", lambda ch: ch.exchange_declare(f"cfg.ex-{RUN}"), "ok"),
    ("declare an exchange it may not configure", lambda ch: ch.exchange_declare(f"rd.ex-{RUN}"), 403),
    ("declare an exchange with an alternate exchange it may not write",
     lambda ch: ch.exchange_declare(f"cfg.ae-{RUN}", arguments={"alternate-exchange": "other.x"}), 403),
    ("delete an exchange it may not configure", lambda ch: ch.exchange_delete("wr.x"), 403),
    ("publish to an exchange it may write", publish("wr.x", "k"), "ok"),
    ("publish to an exchange it may not write", publish("rd.x", "k"), 403),
    ("publish to the default exchange", publish("", "rd.q"), 403),
    ("publish to a missing exchange it may not write", publish("nope.x", "k"), 403),
    ("get from a queue it may read", lambda ch: ch.basic_get("rd.q"), "ok"),
    ("get from a queue it may not read", lambda ch: ch.basic_get("wr.q"), 403),
    ("consume a queue it may read", consume("rd.q"), "ok"),
    ("consume a queue it may not read", consume("other.q"), 403),
    ("purge a queue it may read", lambda ch: ch.queue_purge("rd.q"), "ok"),
    ("purge a queue it may not read", lambda ch: ch.queue_purge("cfg.q"), 403),
    ("bind a queue it may write to an exchange it may read", lambda ch: ch.queue_bind("wr.q", "rd.x", "k"), "ok"),
    ("bind a queue it may not write", lambda ch: ch.queue_bind("rd.q", "rd.x", "k"), 403),
    ("bind from an exchange it may not read", lambda ch: ch.queue_bind("wr.q", "wr.x", "k"), 403),
    ("unbind a queue it may not write", lambda ch: ch.queue_unbind("rd.q", "rd.x", "k"), 403),
    ("bind exchange to exchange", lambda ch: ch.exchange_bind("wr.x", "rd.x", "k"), "ok"),
    ("bind to an exchange it may not write", lambda ch: ch.exchange_bind("rd.x", "rd.t", "k"), 403),
    ("publish to a topic exchange with an allowed key", publish("wr.rd.x", "allowed.a"), "ok"),
    ("bind with an allowed topic key", lambda ch: ch.queue_bind("wr.rd.q", "rd.t", "allowed.#"), "ok"),
    ("bind with a topic key it may not read", lambda ch: ch.queue_bind("wr.rd.q", "rd.t", "denied.#"), 403),
]


@pytest.mark.parametrize("case,operation,expected", CASES, ids=[c[0] for c in CASES])
def test_the_permission_matrix_agrees_with_rabbitmq(brokers, case, operation, expected):
    outcomes = {b.name: b.outcome(operation) for b in brokers}
    rabbit = outcomes["rabbitmq"]
    got = rabbit if rabbit == "ok" else rabbit[0]
    assert got == expected, f"RabbitMQ itself: {rabbit}"
    assert outcomes["ferrymq"] == rabbit, outcomes


def test_publishing_to_a_topic_exchange_checks_the_routing_key(brokers):
    # A topic exchange the user may write, with a topic permission narrowing its keys.
    for b in brokers:
        assert b.api.put("/api/exchanges/%2F/wr.t", {"type": "topic"}).status_code in (201, 204)
        topic = {"exchange": "wr.t", "write": "^allowed\\.", "read": ".*"}
        assert b.api.put(f"/api/topic-permissions/%2F/{b.user}", topic).status_code in (201, 204)
    outcomes = {b.name: (b.outcome(publish("wr.t", "allowed.x")), b.outcome(publish("wr.t", "denied.x")))
                for b in brokers}
    assert outcomes["rabbitmq"][0] == "ok"
    assert outcomes["rabbitmq"][1][0] == 403, outcomes
    assert outcomes["ferrymq"] == outcomes["rabbitmq"], outcomes


def test_topic_permissions_are_listed_and_deleted_like_rabbitmqs(brokers):
    for b in brokers:
        listed = b.api.json(f"/api/topic-permissions/%2F/{b.user}")
        assert {(p["exchange"], p["write"], p["read"]) for p in listed} >= {
            ("rd.t", "^allowed\\.", "^allowed\\.")}, b.name
        assert all(p["user"] == b.user and p["vhost"] == "/" for p in listed)
        assert any(p["user"] == b.user for p in b.api.json("/api/topic-permissions"))
    defs = {b.name: [p for p in b.api.json("/api/definitions")["topic_permissions"] if p["user"] == b.user]
            for b in brokers}
    norm = lambda ps: sorted((p["exchange"], p["write"], p["read"]) for p in ps)
    assert norm(defs["ferrymq"]) == norm(defs["rabbitmq"])
