"""The management HTTP API, differentially: the same raw requests to ferrymq and to RabbitMQ
3.10, comparing status codes and, in JSON bodies, the keys both must have and their values
where RabbitMQ's are deterministic.

Every test first checks RabbitMQ's answer against what the test expects of it (so a wrong
expectation shows as such), then ferrymq's against RabbitMQ's. Names are unique per test and the
same on both brokers. Differences that are correct and intended are in `KNOWN_DIFFERENCES`.
"""

import json
import re
import time
from typing import NamedTuple
from urllib.parse import quote, urljoin, urlsplit

import pika
import pytest

from mgmt import (  # noqa: F401 (rabbitmq_mgmt is a fixture)
    DEFINITION_KEYS, Api, amqp_url_as, definitions_about, rabbitmq_mgmt, seg, unique,
)

pytestmark = pytest.mark.rabbitmq

KNOWN_DIFFERENCES = {
    "refusal status":
        "an authenticated user whose tags or permissions do not allow a call: RabbitMQ 3.10 "
        "answers 401, ferrymq 403 (401 is for unknown credentials), with the same body",
    "binding properties_key hash":
        "a binding with arguments is named `<key>~<hash of the arguments>`: RabbitMQ hashes with "
        "erlang:phash2, ferrymq with its own stable hash; clients read the key from listings",
}
REFUSED = {"ferrymq": 403, "rabbitmq": 401}  # KNOWN_DIFFERENCES["refusal status"]

# A password hash from RabbitMQ's documentation (salted SHA-256 of "test12").
DOCS_HASH, DOCS_PASSWORD = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "test12"
ERROR = ("error", "reason")
MISSING = "<missing>"
NOBODY = object()
POLL_TIMEOUT = 20.0


class Answer(NamedTuple):
    status: int
    headers: dict  # names in lower case
    body: object  # parsed JSON, else the text


def parse(status: int, headers, data: bytes) -> Answer:
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = data.decode(errors="replace")
    return Answer(status, {k.lower(): v for k, v in headers.items()}, body)


class Brokers:
    """ferrymq and RabbitMQ side by side: one request, two answers."""

    def __init__(self, apis: dict, amqp: dict):
        self.apis = apis
        self.amqp = amqp

    def as_user(self, user: str, password: str) -> "Brokers":
        return Brokers({k: a.as_user(user, password) for k, a in self.apis.items()}, self.amqp)

    def ask(self, method: str, path: str | dict, body=NOBODY, raw: bool = False, headers=None,
            auth: bool = True) -> dict[str, Answer]:
        """`path`: one for both, or one per broker. `raw`: it goes out byte for byte (`%2E`, an
        empty segment)."""
        data = None if body is NOBODY else body if isinstance(body, bytes) else json.dumps(body).encode()
        answers = {}
        paths = path if isinstance(path, dict) else {name: path for name in self.apis}
        for name, api in self.apis.items():
            path = paths[name]
            if raw:
                answers[name] = parse(*api.raw(method, path, data, headers))
                continue
            sent = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
            r = api.request(method, path, data=data, headers=sent, auth=auth)
            answers[name] = parse(r.status_code, r.headers, r.content)
        return answers

    def each(self, call):
        """`call(name, api)` on both brokers."""
        return {name: call(name, api) for name, api in self.apis.items()}


@pytest.fixture(scope="module")
def brokers(shared_broker, rabbitmq_mgmt) -> Brokers:
    return Brokers(
        {"ferrymq": Api(shared_broker.http_url), "rabbitmq": Api(rabbitmq_mgmt.http_url)},
        {"ferrymq": shared_broker.amqp_url, "rabbitmq": rabbitmq_mgmt.amqp_url},
    )


# -- comparing answers --------------------------------------------------------------------------

def at(body, path: str):
    for key in path.split("."):
        if not isinstance(body, dict) or key not in body:
            return MISSING
        body = body[key]
    return body


def pick(body, fields):
    """`fields` (dotted) of a JSON object, or of each object of a list."""
    if isinstance(body, list):
        return [pick(item, fields) for item in body]
    return {f: at(body, f) for f in fields}


def agree(answers: dict[str, Answer], status, same=(), present=()) -> dict[str, Answer]:
    """RabbitMQ answered `status` (an int, or a status per broker), and ferrymq agrees: the
    same status, the same values of `same`, and the keys `present` (RabbitMQ has them)."""
    expected = status if isinstance(status, dict) else {name: status for name in answers}
    ours, theirs = answers["ferrymq"], answers["rabbitmq"]
    assert theirs.status == expected["rabbitmq"], (
        f"the test expects RabbitMQ to answer {expected['rabbitmq']}: {theirs}")
    assert ours.status == expected["ferrymq"], f"ferrymq {ours}\nRabbitMQ {theirs}"
    assert pick(ours.body, same) == pick(theirs.body, same), f"ferrymq {ours}\nRabbitMQ {theirs}"
    lacking = [k for k in present if MISSING in json.dumps(pick(ours.body, [k]))]
    assert not lacking, f"ferrymq lacks {lacking} that RabbitMQ has: {ours.body}"
    assert MISSING not in json.dumps(pick(theirs.body, present)), f"RabbitMQ lacks some of {present}"
    return answers


def allowed(answer: Answer) -> set:
    """The methods a 405's Allow header names, but HEAD and OPTIONS (which RabbitMQ serves on
    every resource)."""
    methods = {m.strip() for m in answer.headers.get("allow", "").split(",")}
    return methods - {"", "HEAD", "OPTIONS"}


def poll(brokers: Brokers, path: str, predicate):
    """Waits (bounded) until GET `path` satisfies `predicate` on both (RabbitMQ's statistics
    lag by an emission interval)."""
    brokers.each(lambda name, api: api.wait_for(path, predicate, timeout=POLL_TIMEOUT))


def cleanup(brokers: Brokers, *paths: str):
    for path in paths:
        brokers.ask("DELETE", path)


def encode_all(name: str) -> str:
    """Percent-encodes every character but letters and digits, as rabbitmqadmin does."""
    return "".join(c if c.isalnum() else "".join(f"%{b:02X}" for b in c.encode()) for c in name)


def amqp_login(brokers: Brokers, user: str, password: str, vhost: str = "/"):
    """Opens and closes an AMQP connection as `user` on both (raises if either refuses)."""
    for url in brokers.amqp.values():
        pika.BlockingConnection(pika.URLParameters(amqp_url_as(url, user, password, vhost))).close()


QUEUE = {"durable": True, "auto_delete": False, "arguments": {"x-max-length": 10}}
QUEUE_FIELDS = ("name", "vhost", "type", "durable", "auto_delete", "exclusive", "arguments",
                "messages", "messages_ready", "messages_unacknowledged", "consumers")


# -- queues -------------------------------------------------------------------------------------

def test_queue_put_get_delete(brokers):
    path = f"/api/queues/%2F/{seg(unique('df.q'))}"
    agree(brokers.ask("PUT", path, QUEUE), 201)
    agree(brokers.ask("PUT", path, QUEUE), 204)
    poll(brokers, path, lambda q: q.get("state") == "running")
    agree(brokers.ask("GET", path), 200, same=QUEUE_FIELDS + ("state",),
          present=("node", "memory", "policy", "consumer_details"))
    agree(brokers.ask("DELETE", path), 204)
    agree(brokers.ask("DELETE", path), 404, same=ERROR)
    agree(brokers.ask("GET", path), 404, same=ERROR)


def test_queue_put_with_an_empty_body_takes_the_defaults(brokers):
    path = f"/api/queues/%2F/{seg(unique('df.q'))}"
    agree(brokers.ask("PUT", path, {}), 201)
    agree(brokers.ask("GET", path + "?columns=durable,auto_delete,arguments"), 200,
          same=("durable", "auto_delete", "arguments"))
    cleanup(brokers, path)


@pytest.fixture
def queue_path(brokers):
    path = f"/api/queues/%2F/{seg(unique('df.q'))}"
    agree(brokers.ask("PUT", path, QUEUE), 201)
    yield path
    cleanup(brokers, path)


@pytest.mark.parametrize("method, target, body, status", [
    pytest.param("PUT", "existing", {**QUEUE, "durable": False}, 400, id="inequivalent"),
    pytest.param("PUT", "new", b'{"durable":', 400, id="not-json"),
    pytest.param("PUT", "new", {"durable": "yes"}, 400, id="durable-yes"),
    pytest.param("PUT", "in-unknown-vhost", QUEUE, 404, id="unknown-vhost"),
    pytest.param("GET", "new", NOBODY, 404, id="unknown-queue"),
    pytest.param("PUT", "amq.x", QUEUE, REFUSED, id="amq-prefix"),
])
def test_queue_refusals(brokers, queue_path, method, target, body, status):
    paths = {"existing": queue_path, "new": f"/api/queues/%2F/{seg(unique('df.q'))}",
             "in-unknown-vhost": f"/api/queues/{seg(unique('nope'))}/q", "amq.x": "/api/queues/%2F/amq.x"}
    agree(brokers.ask(method, paths[target], body), status, same=ERROR)


@pytest.mark.parametrize("method, suffix", [("PATCH", ""), ("POST", ""), ("GET", "/get")])
def test_wrong_method_is_405_with_allow(brokers, queue_path, method, suffix):
    answers = agree(brokers.ask(method, queue_path + suffix, NOBODY if method == "GET" else {}), 405)
    assert allowed(answers["ferrymq"]) == allowed(answers["rabbitmq"]), answers


# -- exchanges ------------------------------------------------------------------------------------

def test_exchange_put_get_delete(brokers):
    path = f"/api/exchanges/%2F/{seg(unique('df.x'))}"
    topic = {"type": "topic", "durable": True, "auto_delete": False, "arguments": {}}
    agree(brokers.ask("PUT", path, topic), 201)
    agree(brokers.ask("PUT", path, topic), 204)
    agree(brokers.ask("GET", path), 200,
          same=("name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"))
    agree(brokers.ask("PUT", path, {**topic, "type": "fanout"}), 400, same=ERROR)
    agree(brokers.ask("PUT", f"/api/exchanges/%2F/{seg(unique('df.x'))}", {"type": "nosuch"}), 400,
          same=ERROR)
    agree(brokers.ask("DELETE", path), 204)
    agree(brokers.ask("DELETE", path), 404, same=ERROR)


# -- bindings -------------------------------------------------------------------------------------

BINDING_FIELDS = ("source", "vhost", "destination", "destination_type", "routing_key", "arguments")


def declare_ends(brokers: Brokers, *paths: str):
    for path in paths:
        body = QUEUE if path.startswith("/api/queues") else {"type": "topic"}
        agree(brokers.ask("PUT", path, body), 201)


def bind(brokers: Brokers, path: str, body: dict) -> dict:
    """POSTs a binding (201 on both); returns the path its Location names on each broker. They
    are the same but for the hash of the arguments (KNOWN_DIFFERENCES)."""
    answers = agree(brokers.ask("POST", path, body), 201)
    located = {name: urlsplit(urljoin(brokers.apis[name].base + path, a.headers.get("location", ""))).path
               for name, a in answers.items()}
    unhashed = {name: re.sub(r"~[^/]+$", "~", p) for name, p in located.items()}
    assert unhashed["ferrymq"] == unhashed["rabbitmq"], answers
    return located


def test_bindings(brokers):
    x, x2, q = unique("df.x"), unique("df.x2"), unique("df.q")
    xp, x2p, qp = (f"/api/exchanges/%2F/{seg(x)}", f"/api/exchanges/%2F/{seg(x2)}",
                   f"/api/queues/%2F/{seg(q)}")
    declare_ends(brokers, xp, x2p, qp)
    to_queue = f"/api/bindings/%2F/e/{seg(x)}/q/{seg(q)}"
    one = bind(brokers, to_queue, {"routing_key": "rk.#", "arguments": {}})
    agree(brokers.ask("GET", one, raw=True), 200, same=BINDING_FIELDS + ("properties_key",))
    agree(brokers.ask("GET", to_queue), 200, same=BINDING_FIELDS + ("properties_key",))
    # rabbitmqadmin's form: every character encoded, the properties_key encoded once more.
    encoded = f"/api/bindings/%2F/e/{encode_all(x)}/q/{encode_all(q)}/rk%2E%2523"
    agree(brokers.ask("DELETE", encoded, raw=True), 204)
    agree(brokers.ask("DELETE", one, raw=True), 404, same=ERROR)
    agree(brokers.ask("GET", one, raw=True), 404, same=ERROR)

    with_args = bind(brokers, to_queue, {"routing_key": "rk", "arguments": {"k": "v"}})
    answers = agree(brokers.ask("GET", with_args, raw=True), 200, same=BINDING_FIELDS)
    keys = {name: a.body["properties_key"] for name, a in answers.items()}
    assert keys["ferrymq"].split("~")[0] == keys["rabbitmq"].split("~")[0] == "rk", keys  # hash: KNOWN_DIFFERENCES
    agree(brokers.ask("DELETE", with_args, raw=True), 204)

    bind(brokers, f"/api/bindings/%2F/e/{seg(x)}/e/{seg(x2)}", {"routing_key": "#.audit"})
    agree(brokers.ask("GET", f"{x2p}/bindings/destination"), 200, same=BINDING_FIELDS)
    agree(brokers.ask("POST", f"/api/bindings/%2F/e/{seg(unique('nope'))}/q/{seg(q)}", {}), 404,
          same=ERROR)
    cleanup(brokers, xp, x2p, qp)


# -- publish and get ------------------------------------------------------------------------------

def message(routing_key: str, payload: str, **properties) -> dict:
    return {"routing_key": routing_key, "payload": payload, "payload_encoding": "string",
            "properties": properties}


def test_publish_to_the_default_exchange(brokers):
    q = unique("df.q")
    qp = f"/api/queues/%2F/{seg(q)}"
    declare_ends(brokers, qp)
    publish = "/api/exchanges/%2F//publish"  # rabbitmqadmin's path: an empty exchange segment
    routed = lambda key: agree(brokers.ask("POST", publish, message(key, "x"), raw=True), 200,
                               same=("routed",))["rabbitmq"].body["routed"]
    assert routed(q) is True
    assert routed(unique("nowhere")) is False
    agree(brokers.ask("POST", publish, {"routing_key": q, "payload": "x"}, raw=True), 400, same=ERROR)
    agree(brokers.ask("POST", f"/api/exchanges/%2F/{seg(unique('nope'))}/publish", message(q, "x")),
          400, same=ERROR)
    cleanup(brokers, qp)


GET_FIELDS = ("payload", "payload_bytes", "payload_encoding", "redelivered", "message_count",
              "exchange", "routing_key", "properties")


def test_get_with_each_ackmode(brokers):
    q = unique("df.q")
    qp = f"/api/queues/%2F/{seg(q)}"
    declare_ends(brokers, qp)
    for i in range(3):
        agree(brokers.ask("POST", "/api/exchanges/%2F/amq.default/publish",
                          message(q, f"m{i}", delivery_mode=2, message_id=f"id{i}",
                                  content_type="text/plain", headers={"n": i})), 200)
    get = lambda ackmode, count=1: brokers.ask(
        "POST", f"{qp}/get", {"count": count, "ackmode": ackmode, "encoding": "auto"})
    for ackmode in ("ack_requeue_true", "reject_requeue_true", "ack_requeue_false",
                    "reject_requeue_false", "ack_requeue_false"):
        agree(get(ackmode), 200, same=GET_FIELDS)
    answers = agree(get("ack_requeue_false", count=5), 200, same=GET_FIELDS)
    assert answers["rabbitmq"].body == [], "the five gets took all three messages"
    agree(brokers.ask("POST", f"{qp}/get", {"count": 1}), 400, same=ERROR)
    agree(brokers.ask("POST", f"/api/queues/%2F/{seg(unique('nope'))}/get",
                      {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}), 404, same=ERROR)

    agree(brokers.ask("POST", "/api/exchanges/%2F/amq.default/publish", message(q, "gone")), 200)
    agree(brokers.ask("DELETE", f"{qp}/contents"), 204)
    agree(get("ack_requeue_false"), 200, same=GET_FIELDS)
    cleanup(brokers, qp)


# -- listings: pagination, filtering, columns, sorting --------------------------------------------

PAGE_FIELDS = ("filtered_count", "item_count", "page", "page_count", "page_size", "total_count", "items")


@pytest.fixture
def listed(brokers):
    """A vhost of its own with five queues; queue i holds i+1 messages."""
    vhost, tag = unique("df-pages"), unique("pg").split("-", 1)[1]
    names = [f"pg{i}.{tag}" for i in range(5)]
    agree(brokers.ask("PUT", f"/api/vhosts/{seg(vhost)}"), 201)
    for i, name in enumerate(names):
        agree(brokers.ask("PUT", f"/api/queues/{seg(vhost)}/{seg(name)}", QUEUE), 201)
        for _ in range(i + 1):
            agree(brokers.ask("POST", f"/api/exchanges/{seg(vhost)}/amq.default/publish",
                              message(name, "x")), 200)
    counts = {name: i + 1 for i, name in enumerate(names)}
    poll(brokers, f"/api/queues/{seg(vhost)}?columns=name,messages,message_stats.publish",
         lambda qs: {q["name"]: (q.get("messages"), at(q, "message_stats.publish")) for q in qs}
         == {n: (c, c) for n, c in counts.items()})
    yield vhost, names, tag
    cleanup(brokers, f"/api/vhosts/{seg(vhost)}")


@pytest.mark.parametrize("query, status, fields", [
    ("page=1&page_size=2&columns=name", 200, PAGE_FIELDS),
    ("page=3&page_size=2&columns=name", 200, PAGE_FIELDS),
    ("page=99&page_size=2", 400, ERROR),
    ("page=1&page_size=501", 400, ERROR),
    ("page=0", 400, ERROR),
    ("page=abc", 400, ERROR),
    ("columns=name,message_stats.publish,arguments", 200, ("name", "message_stats", "arguments")),
    ("sort=messages&sort_reverse=true&columns=name", 200, ("name",)),
    ("sort=message_stats.publish&columns=name,messages", 200, ("name", "messages")),
    ("name=PG1&columns=name", 200, ("name",)),  # without page, name filters nothing
    ("page=1&name=PG1&columns=name", 200, PAGE_FIELDS),  # any-case substring
    ("page=1&name=^pg[13]\\.&use_regex=true&columns=name", 200, PAGE_FIELDS),
])
def test_listing_parameters(brokers, listed, query, status, fields):
    vhost, _, _ = listed
    agree(brokers.ask("GET", f"/api/queues/{seg(vhost)}?{quote(query, safe='=&,')}"), status,
          same=fields)


def test_columns_of_one_object(brokers, listed):
    vhost, names, _ = listed
    answers = agree(brokers.ask("GET", f"/api/queues/{seg(vhost)}/{seg(names[0])}?columns=name,durable"),
                    200, same=("name", "durable"))
    assert sorted(answers["ferrymq"].body) == sorted(answers["rabbitmq"].body) == ["durable", "name"]


# -- users, permissions, vhosts -------------------------------------------------------------------

USER_FIELDS = ("name", "tags", "hashing_algorithm")


def test_users(brokers):
    user, hashed = unique("df-user"), unique("df-hashed")
    path, hashed_path = f"/api/users/{seg(user)}", f"/api/users/{seg(hashed)}"
    agree(brokers.ask("PUT", path, {"password": "s3cret", "tags": "monitoring"}), 201)
    agree(brokers.ask("PUT", path, {"password": "s3cret", "tags": "monitoring"}), 204)
    agree(brokers.ask("GET", path), 200, same=USER_FIELDS, present=("password_hash", "limits"))
    body = {"password_hash": DOCS_HASH, "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ""}
    agree(brokers.ask("PUT", hashed_path, body), 201)
    agree(brokers.ask("GET", hashed_path), 200, same=USER_FIELDS + ("password_hash",))
    permission = {"configure": ".*", "write": ".*", "read": ".*"}
    agree(brokers.ask("PUT", f"/api/permissions/%2F/{seg(hashed)}", permission), 201)
    amqp_login(brokers, hashed, DOCS_PASSWORD)
    agree(brokers.ask("PUT", f"/api/users/{seg(unique('df-user'))}", {"password": "x"}), 400, same=ERROR)
    for p in (path, hashed_path):
        agree(brokers.ask("DELETE", p), 204)
        agree(brokers.ask("DELETE", p), 404, same=ERROR)


def test_permissions(brokers):
    user, vhost = unique("df-user"), unique("df-vh")
    agree(brokers.ask("PUT", f"/api/users/{seg(user)}", {"password": "p", "tags": ""}), 201)
    agree(brokers.ask("PUT", f"/api/vhosts/{seg(vhost)}"), 201)
    path = f"/api/permissions/{seg(vhost)}/{seg(user)}"
    patterns = {"configure": "^df", "write": "w.*", "read": ".*"}
    agree(brokers.ask("PUT", path, patterns), 201)
    agree(brokers.ask("PUT", path, patterns), 204)
    fields = ("user", "vhost", "configure", "write", "read")
    agree(brokers.ask("GET", path), 200, same=fields)
    agree(brokers.ask("GET", f"/api/users/{seg(user)}/permissions"), 200, same=fields)
    agree(brokers.ask("PUT", f"/api/permissions/{seg(unique('nope'))}/{seg(user)}", patterns), 400, same=ERROR)
    agree(brokers.ask("PUT", f"/api/permissions/{seg(vhost)}/{seg(unique('nobody'))}", patterns), 400,
          same=ERROR)
    agree(brokers.ask("PUT", path, {"configure": ".*"}), 400, same=ERROR)
    agree(brokers.ask("DELETE", path), 204)
    agree(brokers.ask("DELETE", path), 404, same=ERROR)
    agree(brokers.ask("GET", path), 404, same=ERROR)
    cleanup(brokers, f"/api/vhosts/{seg(vhost)}", f"/api/users/{seg(user)}")


def test_vhosts(brokers):
    path = f"/api/vhosts/{seg(unique('df-vh'))}"
    agree(brokers.ask("PUT", path, {"description": "made by a test", "tags": "a,b"}), 201)
    agree(brokers.ask("PUT", path), 204)
    agree(brokers.ask("GET", path), 200, same=("name", "description", "tags", "tracing"))
    agree(brokers.ask("DELETE", path), 204)
    agree(brokers.ask("DELETE", path), 404, same=ERROR)


def test_vhost_limits_are_set_listed_enforced_and_cleared(brokers):
    name = unique("df-lim")
    vhost = f"/api/vhosts/{seg(name)}"
    limits = f"/api/vhost-limits/{seg(name)}"
    agree(brokers.ask("PUT", vhost), 201)
    agree(brokers.ask("GET", limits), 200)
    assert {a.body == [] for a in brokers.ask("GET", limits).values()} == {True}
    agree(brokers.ask("PUT", f"{limits}/max-connections", {"value": 1}), 204)
    agree(brokers.ask("PUT", f"{limits}/max-queues", {"value": 1}), 204)
    listed = agree(brokers.ask("GET", limits), 200, same=("0.vhost", "0.value"))
    assert listed["ferrymq"].body == [{"vhost": name, "value": {"max-connections": 1, "max-queues": 1}}]
    every = agree(brokers.ask("GET", "/api/vhost-limits"), 200)
    for broker, answer in every.items():
        rows = [row for row in answer.body if row["vhost"] == name]
        assert rows == [{"vhost": name, "value": {"max-connections": 1, "max-queues": 1}}], (broker, answer.body)
    agree(brokers.ask("PUT", f"{limits}/max-bananas", {"value": 1}), 400)
    # A vhost update keeps its limits.
    agree(brokers.ask("PUT", vhost, {"description": "limited"}), 204)
    agree(brokers.ask("GET", limits), 200, same=("0.value",))

    # Its creator (guest) may use the new vhost, as in RabbitMQ.
    for broker, url in brokers.amqp.items():
        url = url.rsplit("/", 1)[0] + "/" + seg(name)
        first = pika.BlockingConnection(pika.URLParameters(url))
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            pika.BlockingConnection(pika.URLParameters(url))
        assert str(refused.value) == (
            f'ConnectionClosedByBroker: (530) "NOT_ALLOWED - access to vhost \'{name}\' refused '
            'for user \'guest\': connection limit (1) is reached"'), (broker, refused.value)
        ch = first.channel()
        ch.queue_declare("one")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as full:
            ch.queue_declare("two")
        assert full.value.reply_code == 406, (broker, full.value)
        assert full.value.reply_text == (
            f"PRECONDITION_FAILED - cannot declare queue 'two': queue limit in vhost '{name}' (1) "
            "is reached"), (broker, full.value)
        first.close()

    agree(brokers.ask("DELETE", f"{limits}/max-queues"), 204)
    agree(brokers.ask("DELETE", f"{limits}/max-connections"), 204)
    for broker, url in brokers.amqp.items():
        url = url.rsplit("/", 1)[0] + "/" + seg(name)
        a, b = pika.BlockingConnection(pika.URLParameters(url)), pika.BlockingConnection(pika.URLParameters(url))
        b.channel().queue_declare("two")
        a.close()
        b.close()
    agree(brokers.ask("DELETE", vhost), 204)


# -- authentication and authorisation ------------------------------------------------------------

def test_unknown_credentials_are_401(brokers):
    no_credentials = brokers.ask("GET", "/api/overview", auth=False)  # RabbitMQ: an empty body
    wrong_password = brokers.as_user("guest", "wrong").ask("GET", "/api/overview")
    for answers, same in ((no_credentials, ()), (wrong_password, ERROR)):
        agree(answers, 401, same=same)
        assert {a.headers.get("www-authenticate") for a in answers.values()} == {
            'Basic realm="RabbitMQ Management"'}, answers


@pytest.mark.parametrize("tags, method, path", [
    pytest.param("", "GET", "/api/overview", id="no-tags"),
    pytest.param("monitoring", "PUT", "/api/vhosts/{new}", id="monitoring-puts-a-vhost"),
    pytest.param("management", "GET", "/api/users", id="management-lists-users"),
    pytest.param("management", "GET", "/api/queues/{vhost}", id="management-on-a-vhost-without-permissions"),
])
def test_calls_the_tags_do_not_allow(brokers, tags, method, path):
    """Same body on both; the status is KNOWN_DIFFERENCES["refusal status"]."""
    user, vhost, new = unique("df-user"), unique("df-vh"), unique("df-new")
    agree(brokers.ask("PUT", f"/api/users/{seg(user)}", {"password": "p", "tags": tags}), 201)
    agree(brokers.ask("PUT", f"/api/permissions/%2F/{seg(user)}",
                      {"configure": ".*", "write": ".*", "read": ".*"}), 201)
    agree(brokers.ask("PUT", f"/api/vhosts/{seg(vhost)}"), 201)
    call = path.format(new=seg(new), vhost=seg(vhost))
    agree(brokers.as_user(user, "p").ask(method, call, {} if method == "PUT" else NOBODY), REFUSED,
          same=ERROR)
    cleanup(brokers, f"/api/vhosts/{seg(vhost)}", f"/api/vhosts/{seg(new)}", f"/api/users/{seg(user)}")


# -- closing a connection -----------------------------------------------------------------------

def test_delete_connection_with_a_reason(brokers):
    label = unique("df-conn")
    connections = {}
    for name, url in brokers.amqp.items():
        params = pika.URLParameters(url)
        params.client_properties = {"connection_name": label}
        connections[name] = pika.BlockingConnection(params)
    names = brokers.each(lambda broker, api: connection_named(api, label))
    closed = {}
    for broker, name in names.items():
        api = brokers.apis[broker]
        status, _, body = api.raw("DELETE", f"/api/connections/{encode_all(name)}",
                                  headers={"X-Reason": "bye"})
        assert status == 204, f"{broker}: {status} {body}"
        closed[broker] = closed_by_broker(connections[broker])
        # RabbitMQ drops a closed connection from its tables a moment after the client
        # saw connection.close: once it is gone from the listing, a second DELETE is a 404.
        api.wait_for("/api/connections", lambda cs: name not in [c["name"] for c in cs], timeout=POLL_TIMEOUT)
        status, _, _ = api.raw("DELETE", f"/api/connections/{encode_all(name)}")
        assert status == 404, broker
    assert closed["ferrymq"] == closed["rabbitmq"] == (320, "CONNECTION_FORCED - bye"), closed


def connection_named(api: Api, label: str) -> str:
    """The name of the connection whose client called itself `label`, once listed (bounded)."""
    mine = lambda cs: [c["name"] for c in cs if c.get("user_provided_name") == label]
    return mine(api.wait_for("/api/connections", mine, timeout=POLL_TIMEOUT))[0]


def closed_by_broker(conn) -> tuple | None:
    """Processes events (bounded) until the broker closes `conn`; its (code, text)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            conn.process_data_events(time_limit=0.1)
        except pika.exceptions.ConnectionClosedByBroker as e:
            return e.reply_code, e.reply_text
    conn.close()
    return None


# -- definitions round trips -----------------------------------------------------------------------

def create_objects(api: Api, n: dict):
    """A vhost, a user with a password and permissions, a durable queue with arguments, a topic
    exchange and bindings (to the queue, and exchange to exchange with arguments)."""
    vh = seg(n["vhost"])
    requests = [
        ("PUT", f"/api/vhosts/{vh}", {}),
        ("PUT", f"/api/users/{seg(n['user'])}", {"password": "s3cret", "tags": "monitoring"}),
        ("PUT", f"/api/permissions/{vh}/{seg(n['user'])}", {"configure": "^df", "write": ".*", "read": ".*"}),
        ("PUT", f"/api/queues/{vh}/{seg(n['queue'])}", QUEUE),
        ("PUT", f"/api/exchanges/{vh}/{seg(n['exchange'])}", {"type": "topic", "durable": True}),
        ("PUT", f"/api/exchanges/{vh}/{seg(n['fanout'])}", {"type": "fanout", "durable": True}),
        ("POST", f"/api/bindings/{vh}/e/{seg(n['exchange'])}/q/{seg(n['queue'])}", {"routing_key": "a.*.c"}),
        ("POST", f"/api/bindings/{vh}/e/{seg(n['exchange'])}/e/{seg(n['fanout'])}",
         {"routing_key": "#", "arguments": {"x-k": "v"}}),
    ]
    for method, path, body in requests:
        r = api.request(method, path, json_body=body)
        assert r.status_code in (201, 204), f"{method} {path}: {r.status_code} {r.text}"


def round_trip(brokers: Brokers, source: str, target: str):
    """Objects made on `source`, exported, imported into `target`: the same definitions, and
    the user logs in to `target` with its password."""
    n = {k: unique(f"df-{k}") for k in ("vhost", "user", "queue", "exchange", "fanout")}
    create_objects(brokers.apis[source], n)
    exported = brokers.apis[source].json("/api/definitions")
    ours = definitions_about(exported, n.values())
    # The export restricted to this test's objects: the brokers are shared, and guest's
    # password hash (or other tests' objects) must not travel.
    mentions = lambda entry: any(name in json.dumps(entry) for name in n.values())
    document = {**{k: v for k, v in exported.items() if not isinstance(v, list)},
                **{kind: [e for e in exported.get(kind, []) if mentions(e)] for kind in DEFINITION_KEYS}}
    r = brokers.apis[target].request("POST", "/api/definitions", json_body=document)
    assert r.status_code == 204, f"{target} refused {source}'s definitions: {r.status_code} {r.text}"
    imported = definitions_about(brokers.apis[target].json("/api/definitions"), n.values())
    as_set = lambda entries: sorted(json.dumps(e, sort_keys=True) for e in entries)
    for kind in ours:
        assert as_set(imported[kind]) == as_set(ours[kind]), f"{kind} after the import into {target}"
    url = amqp_url_as(brokers.amqp[target], n["user"], "s3cret", n["vhost"])
    pika.BlockingConnection(pika.URLParameters(url)).close()
    cleanup(brokers, f"/api/vhosts/{seg(n['vhost'])}", f"/api/users/{seg(n['user'])}")


def test_rabbitmq_definitions_import_into_ferrymq(brokers):
    round_trip(brokers, "rabbitmq", "ferrymq")


def test_ferrymq_definitions_import_into_rabbitmq(brokers):
    round_trip(brokers, "ferrymq", "rabbitmq")
