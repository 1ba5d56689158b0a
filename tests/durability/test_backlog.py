"""A queue holding far more than the broker's memory budget: its messages wait on disk, so
the broker's resident memory stays bounded while the backlog fills and drains, and the backlog
drains completely and in order. A durable queue of persistent messages keeps them in its
journal; a non-durable queue of transient messages pages to scratch files once the budget is
used, as RabbitMQ's classic queues do. (CI scale; docs/durability.md has the 5 GiB run.)"""

import os
import threading
import time

import pytest

import pipeline

MESSAGES = int(os.environ.get("FERRYMQ_BACKLOG_MESSAGES", "120000"))
SIZE = 1024
CACHE = 4 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def dir_bytes(path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except FileNotFoundError:
                pass
    return total


class Sampler:
    """Largest RSS seen while a phase runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


@pytest.mark.slow
@pytest.mark.parametrize("durable", [True, False], ids=["durable-persistent", "transient"])
def test_a_backlog_beyond_the_memory_budget_keeps_rss_bounded_and_drains_in_order(
        make_broker, durable):
    broker = make_broker(env={"FERRYMQ_STORAGE_QUEUE_CACHE_BYTES": str(CACHE)})
    pid = broker.proc.pid
    conn = pipeline.Connection(broker.amqp_url)
    conn.call(pipeline.spec.Queue.Declare(queue="backlog", durable=durable), (50, 11))
    conn.close()
    idle = rss_bytes(pid)
    backlog = MESSAGES * SIZE

    with Sampler(pid) as filling:
        published = pipeline.publish(broker.amqp_url, "backlog", MESSAGES, SIZE,
                                     persistent=durable)
        assert published == MESSAGES
    if durable:
        queue_dir = broker.data_dir / "queues" / "%2F" / "backlog"
    else:
        (queue_dir,) = (broker.data_dir / "transient").iterdir()
    assert dir_bytes(queue_dir) > backlog - CACHE, "the backlog is on disk"

    expected = [0]
    order_errors = []

    def check(body, redelivered):
        index = int(body[:12])
        if index != expected[0] or redelivered or len(body) != SIZE:
            order_errors.append((expected[0], index, redelivered, len(body)))
        expected[0] += 1

    with Sampler(pid) as draining:
        assert pipeline.consume(broker.amqp_url, "backlog", MESSAGES, check) == MESSAGES
    assert not order_errors, order_errors[:5]
    assert expected[0] == MESSAGES

    # Growth stays far below the backlog: the cache, read-ahead and the segments being read.
    budget = CACHE + 48 * 1024 * 1024
    print(f"idle {idle >> 20} MiB, peak filling {filling.peak >> 20} MiB, "
          f"peak draining {draining.peak >> 20} MiB, backlog {backlog >> 20} MiB")
    assert filling.peak - idle < budget, (idle, filling.peak, backlog)
    assert draining.peak - idle < budget, (idle, draining.peak, backlog)

    # Drained space is given back (the message log keeps at most its active segment).
    deadline = time.monotonic() + 10
    while dir_bytes(queue_dir / "messages") > 20 * 1024 * 1024 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dir_bytes(queue_dir / "messages") <= 20 * 1024 * 1024

    conn = pipeline.Connection(broker.amqp_url)
    ok = conn.call(pipeline.spec.Queue.Declare(queue="backlog", passive=True), (50, 11))
    conn.close()
    assert ok[-8:-4] == b"\x00\x00\x00\x00", "message count 0"
