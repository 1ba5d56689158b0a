"""rabbitmqadmin (RabbitMQ's own CLI, v2) against ferrymq and against RabbitMQ 3.10.

Each test runs one scenario of rabbitmqadmin commands on `peer` and on the reference RabbitMQ,
each run with its own unique names, and compares what the two printed: exit codes, and the
table rows about the objects the scenario created, column by column. With peer=rabbitmq the
comparison is a control, RabbitMQ against itself: it proves that the normalisation removes
everything RabbitMQ itself makes non-deterministic, so what remains for ferrymq is a real
difference.

Normalisation, on both sides: the scenario's names become placeholders (`<q>`), addresses
`host:port` become `<addr>`, and the columns in `VOLATILE` are not compared. Differences that
are correct and intended are listed in `KNOWN_DIFFERENCES`, each with its reason; only those
are left out of the ferrymq comparison.

Tables are read with `--table-style markdown` (rabbitmqadmin's interactive mode), which prints a
header row, so columns are compared by name: `--non-interactive` prints no header (and cannot be
combined with a table style), and its whitespace-separated rows lose the empty cells.
"""

import json
import os
import re
import subprocess
import time
from typing import NamedTuple
from urllib.parse import urlsplit

import pika
import pytest

from mgmt import (  # noqa: F401 (rabbitmq_mgmt is a fixture)
    Api, amqp_url_as, definitions_about, rabbitmq_mgmt, tool, unique,
)

pytestmark = pytest.mark.rabbitmq

POLL_TIMEOUT = 20.0  # RabbitMQ's stats reach its API after an emission interval (connections: ~5 s)

# Columns (or overview keys, as regexes) whose values no two runs share, on either broker.
VOLATILE = {
    r"node": "the node name is per broker process (ferrymq-peer-PORT@localhost, ferrymq@host)",
    r"memory": "process memory",
    r"connected_at": "a timestamp",
    r"(server|client)_port": "listener and ephemeral ports",
    r"password_hash": "salted with random bytes at each declaration",
    r"\(total\)$": "broker-wide totals: other tests share the brokers",
    r"rate \(global\)$": "rates depend on the other tests' traffic",
}

# (command, column or row name) -> why ferrymq's output differs from RabbitMQ 3.10's, on
# purpose. "*" is the whole result of the command.
KNOWN_DIFFERENCES = {
    ("show overview", "Product name"): "ferrymq names itself",
    ("show overview", "Product version"): "ferrymq's own version",
    ("show overview", "RabbitMQ version"):
        "ferrymq announces the API level it serves (3.13.x, what rabbitmqadmin 2.x is written for)",
    ("show overview", "Erlang version"): "ferrymq is not an Erlang program",
    ("show overview", "Erlang details"): "ferrymq is not an Erlang program",
    ("list exchanges", "amq.rabbitmq.trace"):
        "RabbitMQ's firehose tracer exchange: ferrymq has no tracer (its vhosts say tracing: false)",
    ("list consumers", "*"):
        "RabbitMQ 3.10's consumers lack consumer_timeout, which rabbitmqadmin 2.x requires "
        "(it exits 65 'error decoding response body'); ferrymq serves it. The consumer itself "
        "is compared through /api/consumers",
}

ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}:\d+")


class Target(NamedTuple):
    name: str
    http_url: str
    amqp_url: str

    @property
    def http_port(self) -> int:
        return urlsplit(self.http_url).port

    @property
    def amqp_port(self) -> int:
        return urlsplit(self.amqp_url).port


@pytest.fixture(scope="module")
def reference(rabbitmq_mgmt) -> Target:
    return Target("rabbitmq", rabbitmq_mgmt.http_url, rabbitmq_mgmt.amqp_url)


@pytest.fixture(scope="module", params=["ferrymq", "rabbitmq"])
def peer(request, reference) -> Target:
    if request.param == "rabbitmq":
        return reference
    broker = request.getfixturevalue("shared_broker")
    return Target("ferrymq", broker.http_url, broker.amqp_url)


@pytest.fixture(scope="module")
def rabbitmqadmin(tmp_path_factory) -> list[str]:
    """The command line up to the subcommand; HOME is empty so no ~/.rabbitmqadmin.conf applies."""
    return [tool("rabbitmqadmin"), str(tmp_path_factory.mktemp("home"))]


# -- tables ------------------------------------------------------------------------------------

def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_table(text: str) -> list[dict]:
    """The rows of a markdown table, as dicts by header. A cell printed on several lines
    (message properties) is joined with ','; a key/value table (show overview) becomes one row."""
    lines = [l for l in text.splitlines() if l.startswith("|")]
    lines = [l for l in lines if not re.fullmatch(r"\|[-|]+\|", l.strip())]
    if not lines:
        return []
    header, body = cells(lines[0]), [cells(l) for l in lines[1:]]
    if len(header) == 1 and body and body[0] == ["key", "value"]:
        return [{k: v for k, v in body[1:]}]
    rows = []
    for values in body:
        continuation = rows and values[0] == "" and sum(v == "" for v in values) > len(values) / 2
        if not continuation:
            rows.append(dict(zip(header, values)))
            continue
        for column, value in zip(header, values):
            if value:
                rows[-1][column] = f"{rows[-1][column]},{value}".lstrip(",")
    return rows


class Run(NamedTuple):
    code: int
    out: str
    err: str

    @property
    def rows(self) -> list[dict]:
        return parse_table(self.out)


# -- one scenario on one broker ---------------------------------------------------------------

class Session:
    """The commands of one scenario on one broker, and what they printed, normalised."""

    def __init__(self, target: Target, cli: list[str], keys):
        self.target = target
        self.cli = cli
        self.names = {key: unique(key) for key in keys}
        self.results: dict[str, dict] = {}

    def __getitem__(self, key: str) -> str:
        return self.names[key]

    def name(self, key: str, value: str):
        """Adds a name the broker chose (a connection name) as a placeholder."""
        self.names[key] = value

    def norm(self, text: str) -> str:
        for key, value in sorted(self.names.items(), key=lambda kv: -len(kv[1])):
            text = text.replace(value, f"<{key}>")
        return ADDRESS.sub("<addr>", text)

    def normalised(self, value):
        if isinstance(value, str):
            return self.norm(value)
        if isinstance(value, dict):
            return {k: self.normalised(v) for k, v in value.items() if not volatile(k)}
        if isinstance(value, list):
            return sorted((self.normalised(v) for v in value), key=repr)
        return value

    def ours(self, rows: list[dict]) -> list[dict]:
        """The rows that mention one of this scenario's names."""
        return [r for r in rows if any(n in json.dumps(r) for n in self.names.values())]

    def admin(self, *args: str) -> Run:
        binary, home = self.cli
        t = self.target
        proc = subprocess.run(
            [binary, "--host", "127.0.0.1", "--port", str(t.http_port), "--username", "guest",
             "--password", "guest", "--table-style", "markdown", *args],
            capture_output=True, text=True, timeout=30, env={**os.environ, "HOME": home},
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def record(self, label: str, value):
        label = self.norm(label)
        while label in self.results:
            label += " (again)"
        self.results[label] = self.normalised(value)

    def run(self, *args: str, expect: str | None = "ok", rows: str = "ours") -> Run:
        """Runs one command and records its exit code and output: the table rows about this
        scenario's objects (`rows="all"`: every row), or the text when it printed no table.
        `expect`: "ok" (exit 0), "fail" (non-zero) or None (recorded only)."""
        result = self.admin(*args)
        self.check(args, result, expect)
        self.record(" ".join(args), self.summary(result, rows))
        return result

    def check(self, args, result: Run, expect):
        what = f"{self.target.name}: rabbitmqadmin {' '.join(args)} exited {result.code}"
        if expect == "ok":
            assert result.code == 0, f"{what}:\n{result.out}{result.err}"
        elif expect == "fail":
            assert result.code != 0, f"{what} (a failure was expected):\n{result.out}"

    def summary(self, result: Run, rows: str) -> dict:
        table = result.rows
        if table:
            return {"exit code": result.code, "rows": table if rows == "all" else self.ours(table)}
        return {"exit code": result.code, "output": (result.out + result.err).strip()}

    def poll(self, *args: str, until) -> Run:
        """Runs a listing until `until(rows about this scenario's objects)` holds (bounded),
        and records the last run. After the deadline the last run is recorded as it is, for the
        comparison to show."""
        deadline = time.monotonic() + POLL_TIMEOUT
        while True:
            result = self.admin(*args)
            if (result.code == 0 and until(self.ours(result.rows))) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.check(args, result, "ok")
        self.record(" ".join(args), self.summary(result, "ours"))
        return result


def volatile(column: str) -> bool:
    return any(re.search(pattern, column) for pattern in VOLATILE)


def known(command: str, column: str) -> bool:
    return (command, column) in KNOWN_DIFFERENCES or (command, "*") in KNOWN_DIFFERENCES


def command_of(label: str) -> str:
    return " ".join(label.split()[:2])


def without_known(label: str, result: dict) -> dict:
    """A result minus the columns and rows KNOWN_DIFFERENCES excuses for its command."""
    command = command_of(label)
    if known(command, "*"):
        return {}
    strip = lambda rows: [{k: v for k, v in row.items() if not known(command, k)}
                          for row in rows if not known(command, row.get("name"))]
    return {k: strip(v) if k == "rows" else v for k, v in result.items()}


def differences(ours: Session, theirs: Session) -> list[str]:
    """Every recorded result on which `ours` and RabbitMQ disagree."""
    found = []
    excuse = ours.target.name == "ferrymq"
    for label in theirs.results.keys() | ours.results.keys():
        mine, ref = ours.results.get(label), theirs.results.get(label)
        if mine is None or ref is None:
            found.append(f"{label}: only {'RabbitMQ' if mine is None else ours.target.name} ran it")
            continue
        if excuse:
            mine, ref = without_known(label, mine), without_known(label, ref)
        if mine != ref:
            found.append(f"{label}:\n    {ours.target.name}: {mine}\n    rabbitmq: {ref}")
    return found


def compare(peer: Target, reference: Target, cli, scenario, *keys: str):
    """Runs `scenario(session)` on `peer` and on the reference RabbitMQ and compares them."""
    ours = Session(peer, cli, keys)
    scenario(ours)
    theirs = Session(reference, cli, keys)
    scenario(theirs)
    found = differences(ours, theirs)
    assert not found, f"{peer.name} differs from RabbitMQ:\n" + "\n".join(sorted(found))


def has(rows, **columns) -> bool:
    return any(all(row.get(k) == v for k, v in columns.items()) for row in rows)


# -- scenarios ---------------------------------------------------------------------------------

def test_show_overview(peer, reference, rabbitmqadmin):
    compare(peer, reference, rabbitmqadmin, lambda s: s.run("show", "overview", rows="all"))


def test_queue_declare_list_delete(peer, reference, rabbitmqadmin):
    def scenario(s):
        declare = ("declare", "queue", "--name", s["ra.q"], "--type", "classic", "--durable", "true")
        s.run(*declare)
        s.run(*declare)  # the same again: 204, still exit 0
        s.poll("list", "queues", until=lambda rows: has(rows, name=s["ra.q"], state="running"))
        s.run("delete", "queue", "--name", s["ra.q"])
        s.run("list", "queues")
        s.run("delete", "queue", "--name", s["ra.q"], expect="fail")
        s.run("delete", "queue", "--name", s["ra.q"], "--idempotently")

    compare(peer, reference, rabbitmqadmin, scenario, "ra.q")


def test_exchanges_and_bindings(peer, reference, rabbitmqadmin):
    def scenario(s):
        s.run("declare", "queue", "--name", s["ra.q"], "--type", "classic", "--durable", "true")
        s.run("declare", "exchange", "--name", s["ra.x"], "--type", "topic", "--durable", "true")
        s.run("declare", "exchange", "--name", s["ra.x2"], "--type", "topic", "--durable", "true")
        s.run("list", "exchanges")
        to_queue = ("--source", s["ra.x"], "--destination-type", "queue", "--destination", s["ra.q"],
                    "--routing-key", "ra.#")
        to_exchange = ("--source", s["ra.x"], "--destination-type", "exchange",
                       "--destination", s["ra.x2"], "--routing-key", "#.audit")
        s.run("declare", "binding", *to_queue)
        s.run("declare", "binding", *to_exchange)
        s.run("list", "bindings")
        s.run("delete", "binding", *to_queue)
        s.run("delete", "binding", *to_exchange)
        s.run("list", "bindings")
        for name in ("ra.x", "ra.x2"):
            s.run("delete", "exchange", "--name", s[name])
        s.run("delete", "queue", "--name", s["ra.q"])
        s.run("list", "exchanges")

    compare(peer, reference, rabbitmqadmin, scenario, "ra.q", "ra.x", "ra.x2")


def test_publish_get_purge(peer, reference, rabbitmqadmin):
    def scenario(s):
        q = s["ra.q"]
        s.run("declare", "queue", "--name", q, "--type", "classic", "--durable", "true")
        s.run("declare", "exchange", "--name", s["ra.x"], "--type", "topic")
        s.run("declare", "binding", "--source", s["ra.x"], "--destination-type", "queue",
              "--destination", q, "--routing-key", "ra.#")
        s.run("publish", "message", "--exchange", s["ra.x"], "--routing-key", "ra.a",
              "--payload", "hello", "--properties",
              '{"delivery_mode": 2, "content_type": "text/plain", "headers": {"n": 1}}')
        s.run("publish", "message", "--routing-key", q, "--payload", "second")
        s.run("publish", "message", "--routing-key", s["ra.nowhere"], "--payload", "lost")
        s.poll("list", "queues", until=lambda rows: has(rows, name=q, message_count="2"))
        s.run("get", "messages", "--queue", q, "--count", "2", "--ack-mode", "ack_requeue_true")
        s.run("get", "messages", "--queue", q, "--ack-mode", "ack_requeue_false")
        s.poll("list", "queues", until=lambda rows: has(rows, name=q, message_count="1"))
        s.run("purge", "queue", "--name", q)
        s.poll("list", "queues", until=lambda rows: has(rows, name=q, message_count="0"))
        s.run("get", "messages", "--queue", q)
        s.run("delete", "exchange", "--name", s["ra.x"])
        s.run("delete", "queue", "--name", q)

    compare(peer, reference, rabbitmqadmin, scenario, "ra.q", "ra.x", "ra.nowhere")


def consumers_of(target: Target, tag: str) -> list[dict]:
    """The consumer `tag` as /api/consumers shows it, in the fields rabbitmqadmin prints."""
    api = Api(target.http_url)
    deadline = time.monotonic() + POLL_TIMEOUT
    found = []
    while not found and time.monotonic() < deadline:
        found = [c for c in api.json("/api/consumers") if c["consumer_tag"] == tag]
        time.sleep(0.2)
    return [{"vhost": c["queue"]["vhost"], "queue": c["queue"]["name"], "consumer_tag": tag,
             "manual_ack": str(c["ack_required"]).lower(),
             "prefetch_count": str(c["prefetch_count"]), "active": str(c["active"]).lower(),
             "exclusive": str(c["exclusive"]).lower()} for c in found]


def test_connections_channels_consumers(peer, reference, rabbitmqadmin):
    """A live pika connection (as a user the scenario declares) with one consumer."""

    def scenario(s):
        user, q, tag = s["ra-user"], s["ra.q"], s["ra.tag"]
        s.run("declare", "user", "--name", user, "--password", "s3cret", "--tags", "monitoring")
        s.run("declare", "permissions", "--vhost", "/", "--username", user,
              "--configure", ".*", "--read", ".*", "--write", ".*")
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url_as(s.target.amqp_url, user, "s3cret")))
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=7)
            ch.queue_declare(q)
            ch.basic_consume(q, lambda *a: None, consumer_tag=tag)
            conn.process_data_events(time_limit=0.1)
            s.run("list", "user_connections", "--username", user)
            listed = s.poll("list", "connections", until=lambda rows: has(rows, username=user))
            mine = [r for r in listed.rows if r.get("username") == user]
            if mine:
                s.name("conn", mine[0]["name"])
            s.poll("list", "channels", until=lambda rows: has(rows, consumer_count="1"))
            consumers = s.run("list", "consumers", expect=None)
            api_view = consumers_of(s.target, tag)
            s.record("GET /api/consumers", {"rows": api_view})
            if s.target.name == "ferrymq":
                rows = [r for r in consumers.rows if r.get("consumer_tag") == tag]
                assert consumers.code == 0 and rows, f"list consumers:\n{consumers.out}{consumers.err}"
                assert [{k: r[k] for k in api_view[0]} for r in rows] == api_view
        finally:
            conn.close()
        s.run("delete", "queue", "--name", q)
        s.run("delete", "user", "--name", user)

    compare(peer, reference, rabbitmqadmin, scenario, "ra-user", "ra.q", "ra.tag")


def test_vhosts_users_permissions(peer, reference, rabbitmqadmin):
    def scenario(s):
        vhost, user = s["ra-vh"], s["ra-user"]
        s.run("declare", "vhost", "--name", vhost, "--description", "from rabbitmqadmin")
        s.run("declare", "user", "--name", user, "--password", "s3cret", "--tags", "monitoring")
        s.run("declare", "permissions", "--vhost", vhost, "--username", user,
              "--configure", "^ra", "--read", ".*", "--write", "w.*")
        for what in ("vhosts", "users", "permissions"):
            s.run("list", what)
        s.run("delete", "permissions", "--vhost", vhost, "--username", user)
        s.run("list", "permissions")
        s.run("delete", "user", "--name", user)
        s.run("delete", "vhost", "--name", vhost)
        for what in ("vhosts", "users", "permissions"):
            s.run("list", what)

    compare(peer, reference, rabbitmqadmin, scenario, "ra-vh", "ra-user")


def test_definitions_export(peer, reference, rabbitmqadmin, tmp_path):
    def scenario(s):
        vhost = s["ra-vh"]
        s.run("declare", "vhost", "--name", vhost)
        s.run("declare", "user", "--name", s["ra-user"], "--password", "s3cret", "--tags", "monitoring")
        s.run("declare", "permissions", "--vhost", vhost, "--username", s["ra-user"],
              "--configure", ".*", "--read", ".*", "--write", ".*")
        s.run("declare", "queue", "--vhost", vhost, "--name", s["ra.q"], "--type", "classic",
              "--durable", "true", "--arguments", '{"x-max-length": 10}')
        s.run("declare", "exchange", "--vhost", vhost, "--name", s["ra.x"], "--type", "topic")
        s.run("declare", "binding", "--vhost", vhost, "--source", s["ra.x"],
              "--destination-type", "queue", "--destination", s["ra.q"], "--routing-key", "a.#")
        path = tmp_path / f"{s['ra-vh']}.json"
        s.name("file", str(path))
        s.run("definitions", "export", "--file", str(path))
        exported = json.loads(path.read_text())
        s.record("exported definitions", definitions_about(exported, s.names.values()))
        s.run("delete", "vhost", "--name", vhost)
        s.run("delete", "user", "--name", s["ra-user"])

    compare(peer, reference, rabbitmqadmin, scenario, "ra-vh", "ra-user", "ra.q", "ra.x")


def import_document(s: Session) -> dict:
    vhost, user = s["ra-vh"], s["ra-user"]
    return {
        "users": [{"name": user, "tags": ["monitoring"],
                   "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                   "hashing_algorithm": "rabbit_password_hashing_sha256"}],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
        "queues": [{"name": s["ra.q"], "vhost": vhost, "durable": True, "auto_delete": False,
                    "arguments": {"x-max-length": 5, "x-queue-type": "classic"}}],
        "exchanges": [{"name": s["ra.x"], "vhost": vhost, "type": "fanout", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": s["ra.x"], "vhost": vhost, "destination": s["ra.q"],
                      "destination_type": "queue", "routing_key": "", "arguments": {}}],
    }


def test_definitions_import(peer, reference, rabbitmqadmin, tmp_path):
    def scenario(s):
        path = tmp_path / f"{s['ra-vh']}.json"
        s.name("file", str(path))
        path.write_text(json.dumps(import_document(s)))
        s.run("definitions", "import", "--file", str(path))
        vhost = s["ra-vh"]
        s.poll("list", "queues", "--vhost", vhost, until=lambda rows: has(rows, state="running"))
        for what in ("exchanges", "bindings"):
            s.run("list", what, "--vhost", vhost)
        for what in ("users", "permissions"):
            s.run("list", what)
        s.run("delete", "vhost", "--name", vhost)
        s.run("delete", "user", "--name", s["ra-user"])

    compare(peer, reference, rabbitmqadmin, scenario, "ra-vh", "ra-user", "ra.q", "ra.x")


def test_health_checks(peer, reference, rabbitmqadmin):
    def scenario(s):
        s.name("amqp port", str(s.target.amqp_port))
        s.run("health_check", "local_alarms")
        s.run("health_check", "port_listener", "--port", str(s.target.amqp_port))
        s.run("health_check", "protocol_listener", "--protocol", "amqp")

    compare(peer, reference, rabbitmqadmin, scenario)


def test_refusals(peer, reference, rabbitmqadmin):
    """What fails on RabbitMQ fails on ferrymq, with the same exit code."""

    def scenario(s):
        refused = s.admin("declare", "queue", "--name", "amq.x")
        s.check(("declare queue --name amq.x",), refused, "fail")
        s.record("declare queue --name amq.x", {"exit code": refused.code})
        s.run("delete", "queue", "--name", s["nosuch"], expect="fail")
        s.run("delete", "queue", "--name", s["nosuch"], "--idempotently")
        s.run("list", "queues", "--vhost", s["nope"], expect="fail")

    compare(peer, reference, rabbitmqadmin, scenario, "nosuch", "nope")
