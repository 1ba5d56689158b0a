"""Faults: a consumer that falls silent gives its deliveries back; a disk whose fsync fails
poisons only the logs on it, visibly, until a restart recovers them."""

import subprocess
import time
import urllib.request
from pathlib import Path

import pika
import pytest
from confluent_kafka import Producer

from conftest import api_get, get_all, wait_until


def test_missed_heartbeats_close_the_connection_and_requeue_its_unacked(broker):
    silent = pika.BlockingConnection(pika.URLParameters(broker.amqp_url + "?heartbeat=1"))
    ch = silent.channel()
    ch.queue_declare("work")
    ch.basic_publish("", "work", b"job")
    method, _, body = ch.basic_get("work")
    assert body == b"job" and not method.redelivered
    # pika sends heartbeats only while it does I/O: this client now misses them.
    time.sleep(4)
    broker.wait_for_log("missed heartbeats", timeout=10)

    other = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    och = other.channel()
    got = wait_until(lambda: (r := och.basic_get("work", auto_ack=True))[0] and r, timeout=10,
                     message="the unacked delivery back in its queue")
    method, _, body = got
    assert body == b"job" and method.redelivered
    other.close()


# -- a disk that fails fsync ------------------------------------------------------------------

SHIM = Path(__file__).parent / "faults" / "fail_fsync.c"


@pytest.fixture(scope="module")
def fail_fsync_shim(tmp_path_factory):
    """tests/reliability/faults/fail_fsync.c built into an LD_PRELOAD library."""
    out = tmp_path_factory.mktemp("shim") / "fail_fsync.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(out), str(SHIM), "-ldl"],
                   check=True, timeout=60)
    return out


def metric(broker, name):
    with urllib.request.urlopen(broker.http_url + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def produce(bootstrap, topic, value, timeout_ms=4000):
    """One acks=all record; returns the delivery error (None when acknowledged)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "message.timeout.ms": timeout_ms})
    result = []
    producer.produce(topic, value, on_delivery=lambda err, _msg: result.append(err))
    producer.flush(timeout_ms / 1000 + 10)
    assert result, f"no delivery report for {topic}"
    return result[0]


def test_an_fsync_error_poisons_only_its_logs_and_shows_in_the_health_check(
        make_broker, fail_fsync_shim, tmp_path):
    armed = tmp_path / "armed"
    broker = make_broker(env={
        "LD_PRELOAD": str(fail_fsync_shim),
        "FAIL_FSYNC_MATCH": "doomed",
        "FAIL_FSYNC_ARMED": str(armed),
        "FERRYMQ_STORAGE_STREAM_FSYNC": "always",
    })
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=2)
    for name in ("doomed", "healthy"):
        ch.queue_declare(name, durable=True)
    confirmed = [f"before-{i}".encode() for i in range(3)]
    for body in confirmed:
        ch.basic_publish("", "doomed", body, persistent)
    for topic in ("doomed-events", "healthy-events"):
        assert produce(broker.bootstrap, topic, b"before") is None
    assert api_get(broker, "/api/health/checks/storage")[0] == 200

    armed.touch()  # from now on every fsync of a "doomed" file fails with EIO
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", "doomed", b"after", persistent)
    ch.basic_publish("", "healthy", b"after", persistent)  # confirmed: raises nothing
    assert produce(broker.bootstrap, "doomed-events", b"after") is not None
    assert produce(broker.bootstrap, "healthy-events", b"after") is None
    # The poisoned queue still serves what it confirmed (reads keep working).
    method, _, body = ch.basic_get("doomed", auto_ack=False)
    assert body == confirmed[0]
    ch.basic_nack(method.delivery_tag, requeue=True)

    status, check = api_get(broker, "/api/health/checks/storage")
    assert status == 503 and check["status"] == "failed", check
    dirs = [log["dir"] for log in check["logs"]]
    assert any("/queues/" in d and "doomed" in d for d in dirs), dirs
    assert any("/streams/" in d and "doomed-events" in d for d in dirs), dirs
    assert not any("healthy" in d for d in dirs), dirs
    assert all(log["during"] == "fsync" and "Input/output error" in log["cause"]
               for log in check["logs"]), check
    assert metric(broker, "ferrymq_storage_failed_logs") == len(dirs)
    conn.close()

    # A restart recovers the logs from disk: everything confirmed is there, the logs take
    # writes again and the check is healthy.
    armed.unlink()
    broker.restart(crash=True)
    assert api_get(broker, "/api/health/checks/storage")[0] == 200
    assert metric(broker, "ferrymq_storage_failed_logs") == 0
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "doomed", b"again", persistent)
    bodies = [body for _, _, body in get_all(ch, "doomed")]
    # A nack promises nothing either way: the refused message may have reached the disk.
    assert bodies[:3] == confirmed and bodies[-1] == b"again", bodies
    assert set(bodies[3:-1]) <= {b"after"}, bodies
    conn.close()
    assert produce(broker.bootstrap, "doomed-events", b"again") is None
