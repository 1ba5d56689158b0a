"""A real Celery app (kombu's py-amqp transport) running tasks through ferrymq in a real
worker process, including countdown tasks: with quorum queues Celery 5.5+ uses RabbitMQ's
native delayed delivery (28 levels of topic exchanges and TTL queues dead-lettering into
each other); with classic queues the worker holds the message until its ETA."""

import sys
import textwrap
import time

import kombu
import pytest
from celery import Celery

from amqp_helpers import unique, amqp_url  # noqa: F401 (fixtures)
from celery_worker import Worker

APP = """
from celery import Celery

app = Celery("tasks", broker={broker!r}, backend="rpc://")
app.conf.update(
    task_default_queue={queue!r},
    task_default_exchange={queue!r},
    task_default_routing_key={queue!r},
    task_default_exchange_type="topic",
    broker_transport_options={{"confirm_publish": True}},
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if {quorum!r}:
    app.conf.update(task_default_queue_type="quorum", worker_detect_quorum_queues=True)


@app.task(name="add")
def add(x, y):
    return x + y


@app.task(name="retrying", bind=True, max_retries=2, default_retry_delay=0)
def retrying(self):
    if self.request.retries < 2:
        raise self.retry()
    return self.request.retries
"""


@pytest.mark.parametrize("quorum", [False, True], ids=["classic", "quorum-native-delay"])
def test_celery_worker_runs_tasks_including_countdown(amqp_url, tmp_path, quorum):
    broker = amqp_url.replace("amqp://", "pyamqp://")
    queue = unique("celery-tasks")
    (tmp_path / "tasks.py").write_text(textwrap.dedent(APP.format(broker=broker, queue=queue, quorum=quorum)))
    worker = Worker(tmp_path, queue)
    try:
        assert worker.ready.wait(30), "worker not ready:\n" + "\n".join(worker.lines[-40:])
        sys.path.insert(0, str(tmp_path))
        try:
            import importlib

            tasks = importlib.import_module("tasks")
            importlib.reload(tasks)
        finally:
            sys.path.remove(str(tmp_path))
        results = [tasks.add.delay(i, i) for i in range(20)]
        assert [r.get(timeout=20) for r in results] == [2 * i for i in range(20)]
        assert tasks.retrying.delay().get(timeout=20) == 2
        started = time.monotonic()
        delayed = tasks.add.apply_async((40, 2), countdown=2)
        assert delayed.get(timeout=30) == 42
        elapsed = time.monotonic() - started
        assert 1.5 <= elapsed < 20, elapsed
        tasks.app.close()
    finally:
        assert worker.stop() == 0, "\n".join(worker.lines[-40:])
    if quorum:
        # The worker set up native delayed delivery: its exchanges and TTL queues exist.
        with kombu.Connection(broker) as conn:
            ch = conn.default_channel
            for name in ("celery_delayed_27", "celery_delayed_0", "celery_delayed_delivery"):
                ch.exchange_declare(name, "topic", passive=True)
            assert ch.queue_declare("celery_delayed_1", passive=True).queue == "celery_delayed_1"


def test_kombu_producer_consumer_with_confirms(amqp_url):
    url = amqp_url.replace("amqp://", "pyamqp://")
    exchange = kombu.Exchange(unique("kx"), type="direct", durable=False)
    queue = kombu.Queue(unique("kq"), exchange, routing_key="k", durable=False)
    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer(serializer="json")
        for i in range(10):
            producer.publish({"n": i}, exchange=exchange, routing_key="k", declare=[queue])
        got = []

        def on_message(body, message):
            got.append(body["n"])
            message.ack()

        with conn.Consumer(queue, callbacks=[on_message], prefetch_count=3):
            deadline = time.monotonic() + 10
            while len(got) < 10 and time.monotonic() < deadline:
                conn.drain_events(timeout=1)
        assert got == list(range(10))
        queue(conn.default_channel).delete()
