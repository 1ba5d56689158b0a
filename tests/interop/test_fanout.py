"""Topic -> exchange fan-out: records of a topic whose `ferrymq.fanout.exchange` names an
exchange are also published to it (key as routing key), feeding AMQP work queues; here a
real Celery worker runs tasks produced by confluent-kafka, across a broker restart."""

import json
import signal
import textwrap
import time
import uuid
from pathlib import Path

import pika
import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from celery_worker import Worker
from conftest import Broker
from interop_helpers import (  # noqa: F401 (fixtures)
    STREAM, admin, broker, connect, create_topic, produce, producer, unique,
)

FANOUT = "ferrymq.fanout.exchange"


def work_queue(url, exchange, queue, key, kind="direct"):
    conn = connect(url)
    ch = conn.channel()
    ch.exchange_declare(exchange, kind, durable=True)
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, exchange, key)
    conn.close()


def queue_length(broker, queue):
    conn = connect(broker.amqp_url)
    n = conn.channel().queue_declare(queue, passive=True).method.message_count
    conn.close()
    return n


def drain(url, queue, n, timeout=15.0):
    conn = connect(url)
    ch = conn.channel()
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.02)
            continue
        got.append((method, props, body))
    conn.close()
    assert len(got) == n, f"got {len(got)} of {n}"
    return got


def test_create_topics_config_fans_records_out_to_a_classic_queue(broker):
    topic, exchange, queue = unique("orders"), unique("orders-x"), unique("orders-work")
    work_queue(broker.amqp_url, exchange, queue, "eu")
    create_topic(broker, topic, partitions=2, config={FANOUT: exchange})
    p = producer(broker)
    produce(p, topic, [(b"eu", f"order-{i}", [("trace", b"t")], None) for i in range(10)])
    produce(p, topic, [(b"us", b"unrouted", None, None)])
    got = drain(broker.amqp_url, queue, 10)
    assert [b.decode() for _, _, b in got] == [f"order-{i}" for i in range(10)]
    method, props, _ = got[0]
    assert method.exchange == exchange and method.routing_key == "eu"
    assert props.headers == {"trace": "t"}
    assert props.delivery_mode == 2, "persistent: durable queues keep them"

    # DescribeConfigs reports it as a topic config.
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin(broker)
    configs = client.describe_configs([resource])[resource].result(10)
    assert configs[FANOUT].value == exchange
    assert not configs[FANOUT].is_default


def test_alter_configs_switches_fan_out_on_and_off(broker):
    topic, exchange, queue = unique("later"), unique("later-x"), unique("later-work")
    work_queue(broker.amqp_url, exchange, queue, "k", kind="fanout")
    create_topic(broker, topic)
    p = producer(broker)
    produce(p, topic, [(b"k", b"before", None, None)])
    client = admin(broker)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(FANOUT, exchange, incremental_operation=AlterConfigOpType.SET)],
    )
    client.incremental_alter_configs([resource])[resource].result(10)
    # The fan-out covers every record appended once AlterConfigs has answered.
    produce(p, topic, [(b"k", f"after-{i}", None, None) for i in range(5)])
    got = drain(broker.amqp_url, queue, 5)
    assert [b for _, _, b in got] == [f"after-{i}".encode() for i in range(5)]
    assert queue_length(broker, queue) == 0, "records older than the setting are not fanned out"
    off = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(FANOUT, None, incremental_operation=AlterConfigOpType.DELETE)],
    )
    client.incremental_alter_configs([off])[off].result(10)
    produce(p, topic, [(b"k", b"off", None, None)])
    # Nothing to wait for when nothing should happen: a bounded look.
    time.sleep(0.3)
    assert queue_length(broker, queue) == 0


def test_stream_queue_argument_fans_out_amqp_publishes(broker):
    stream, exchange, queue = unique("audit"), unique("audit-x"), unique("audit-work")
    work_queue(broker.amqp_url, exchange, queue, "#", kind="topic")
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.queue_declare(stream, durable=True, arguments={**STREAM, "x-ferrymq-fanout-exchange": exchange})
    ch.confirm_delivery()
    ch.basic_publish("", stream, b"logged", pika.BasicProperties(content_type="text/plain", headers={"n": 1}))
    conn.close()
    ((method, props, body),) = drain(broker.amqp_url, queue, 1)
    assert body == b"logged" and method.exchange == exchange
    assert method.routing_key == stream, "the record's key (the publish's routing key)"
    assert props.content_type == "text/plain" and props.headers == {"n": 1}
    # The Kafka side sees the setting too.
    resource = ConfigResource(ConfigResource.Type.TOPIC, stream)
    client = admin(broker)
    assert client.describe_configs([resource])[resource].result(10)[FANOUT].value == exchange


def test_fan_out_position_is_durable_across_a_crash(make_broker):
    """Records appended while the fan-out exchange does not exist yet wait in the log; the
    broker is killed (SIGKILL); after the restart, declaring the exchange delivers every one
    of them, in order per partition, and nothing twice."""
    b = make_broker()
    topic, exchange, queue = unique("crash"), unique("crash-x"), unique("crash-work")
    create_topic(b, topic, partitions=2, config={FANOUT: exchange})
    p = producer(b, partitioner="murmur2_random")
    records = [(f"key-{i % 4}".encode(), f"{i % 4}:{i}", None, None) for i in range(40)]
    produce(p, topic, records, flush_each=False)
    b.restart(crash=True)
    # The follower resumes the moment the exchange exists, so the queue must receive from
    # that moment on: the exchange is born with an alternate exchange that leads to it.
    conn = connect(b.amqp_url)
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    ch.exchange_declare(exchange + "-ae", "fanout", durable=True)
    ch.queue_bind(queue, exchange + "-ae")
    ch.exchange_declare(exchange, "topic", durable=True,
                        arguments={"alternate-exchange": exchange + "-ae"})
    conn.close()
    got = [body.decode() for _, _, body in drain(b.amqp_url, queue, 40)]
    assert sorted(got) == sorted(v for _, v, _, _ in records)
    for key in range(4):
        mine = [int(v.split(":")[1]) for v in got if v.startswith(f"{key}:")]
        assert mine == sorted(mine), "per-key (per-partition) order"
    # Later records follow; the crash replays nothing already published.
    produce(producer(b), topic, [(b"key-0", b"later", None, None)])
    assert [body for _, _, body in drain(b.amqp_url, queue, 1)] == [b"later"]
    assert queue_length(b, queue) == 0


# ---- a real Celery worker fed from Kafka, across a broker restart --------------------------

APP = """
from celery import Celery

app = Celery("tasks", broker={broker!r})
app.conf.update(
    task_default_queue={queue!r},
    task_default_exchange={queue!r},
    task_default_routing_key={queue!r},
    task_default_exchange_type="topic",
    worker_prefetch_multiplier=4,
    broker_connection_retry=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    worker_hijack_root_logger=False,
)


@app.task(name="record", acks_late=True)
def record(n):
    with open({done!r}, "a") as f:
        f.write(f"{{n}}\\n")
"""


def celery_task(queue, n):
    """Celery's task message protocol 2 as a Kafka record: the AMQP properties Celery needs
    in ferrymq's reserved headers, Celery's own headers as plain headers."""
    task_id = str(uuid.uuid4())
    body = json.dumps([[n], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    headers = [
        ("amqp.content-type", b"application/json"),
        ("amqp.content-encoding", b"utf-8"),
        ("lang", b"py"),
        ("task", b"record"),
        ("id", task_id.encode()),
        ("root_id", task_id.encode()),
        ("parent_id", None),
        ("group", None),
        ("argsrepr", repr((n,)).encode()),
        ("kwargsrepr", b"{}"),
    ]
    return (queue.encode(), body.encode(), headers, None)


def done(path: Path):
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def wait_done(path, expected, worker, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(done(path)) >= expected:
            return
        time.sleep(0.1)
    missing = sorted(expected - set(done(path)))
    raise AssertionError(f"tasks never ran: {missing[:20]}...\n{worker.tail()}")


class CeleryFixture:
    def __init__(self, tmp_path_factory, tmp_path):
        self.broker = Broker(tmp_path_factory.mktemp("celery") / "data").start()
        self.queue = unique("celery-q")
        self.topic = unique("celery-t")
        self.out = tmp_path / "done.txt"
        self.app_dir = tmp_path / "app"
        self.app_dir.mkdir()
        url = self.broker.amqp_url.replace("amqp://", "pyamqp://")
        app = APP.format(broker=url, queue=self.queue, done=str(self.out))
        (self.app_dir / "tasks.py").write_text(textwrap.dedent(app))
        # The topic fans out to Celery's exchange: the record key is the routing key.
        create_topic(self.broker, self.topic, partitions=3, config={FANOUT: self.queue})
        self.worker = None

    def start_worker(self):
        self.worker = Worker(self.app_dir, self.queue)
        assert self.worker.ready.wait(60), "worker not ready:\n" + self.worker.tail()

    def stop_worker(self):
        assert self.worker.stop() == 0, self.worker.tail()
        self.worker = None

    def produce(self, numbers):
        p = producer(self.broker)
        produce(p, self.topic, [celery_task(self.queue, n) for n in numbers], flush_each=False)

    def wait_done(self, expected):
        wait_done(self.out, expected, self.worker)

    def close(self):
        if self.worker is not None:
            self.worker.stop(signal.SIGKILL)
        self.broker.stop()


@pytest.fixture
def celery(tmp_path_factory, tmp_path):
    f = CeleryFixture(tmp_path_factory, tmp_path)
    yield f
    f.close()


@pytest.mark.slow
def test_kafka_records_feed_a_celery_worker_across_a_broker_restart(celery):
    """The worker runs what Kafka producers send; the broker restarts under it (the worker
    reconnects); the fan-out resumes where it stopped: nothing skipped, nothing run twice."""
    celery.start_worker()
    celery.produce(range(100))
    celery.wait_done(set(range(100)))
    celery.broker.restart()
    celery.produce(range(100, 200))
    celery.wait_done(set(range(200)))
    ran = done(celery.out)
    assert sorted(set(ran)) == list(range(200)), "nothing skipped"
    # Celery acknowledges an acks_late task on a later turn of its event loop, so up to its
    # prefetch window (4) of the last tasks before the restart may still be unacknowledged
    # when the broker stops, plus one acknowledgement still on the wire when the broker starts
    # closing the connection (from then on it ignores the client's frames but close-ok, as
    # AMQP 0-9-1 asks and RabbitMQ does). Their durable queue gives them back (at-least-once).
    # Nothing else may run twice: the fan-out resumed where it stopped (a replay from an
    # older position would repeat earlier tasks).
    twice = sorted(n for n in set(ran) if ran.count(n) > 1)
    assert all(n >= 95 for n in twice) and len(ran) - 200 <= 5, twice


@pytest.mark.slow
def test_tasks_waiting_in_the_queue_survive_a_broker_restart(celery):
    """Fanned-out tasks wait in Celery's durable queue (persistent messages) while no worker
    runs; the broker restarts; the worker then runs all of them."""
    celery.start_worker()
    celery.stop_worker()
    celery.produce(range(100))
    deadline = time.monotonic() + 15
    while queue_length(celery.broker, celery.queue) < 100 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue_length(celery.broker, celery.queue) == 100
    celery.broker.restart()
    assert queue_length(celery.broker, celery.queue) == 100, "the queue kept its tasks"
    celery.produce(range(100, 200))
    celery.start_worker()
    celery.wait_done(set(range(200)))
    ran = done(celery.out)
    assert sorted(set(ran)) == list(range(200))
    assert len(ran) == 200, f"{len(ran) - 200} tasks ran twice"
