"""A full disk, for real: ferrymq in a container whose data dir is a 32 MiB tmpfs, with the disk
alarm turned off (`disk_free_limit = 0`) so that writes reach ENOSPC.

Publisher confirms turn into basic.nack, Kafka produce gets KAFKA_STORAGE_ERROR, everything
confirmed before stays readable, and once space is freed (a queue deleted) the broker takes
messages again without a restart.
"""

import pika
import pytest
from confluent_kafka import KafkaError, Producer

from conftest import get_all
from docker_util import dock, engine, ferrymq_image, free_port  # noqa: F401 (fixtures)

READY = "ferrymq ready"
CHUNK = b"d" * (256 * 1024)


def small_disk_broker(dock):
    ports = {"amqp": free_port(), "kafka": free_port()}
    name = dock.run(
        "-p", f"127.0.0.1:{ports['amqp']}:5672", "-p", f"127.0.0.1:{ports['kafka']}:9092",
        "-e", f'FERRYMQ_KAFKA_ADVERTISED_LISTENERS=["PLAINTEXT://127.0.0.1:{ports["kafka"]}","DOCKER://ferrymq:29092"]',
        "-e", "FERRYMQ_RESOURCES_DISK_FREE_LIMIT=0",
        "--tmpfs", "/var/lib/ferrymq:size=32m,uid=10001,gid=10001,mode=0700",
        ferrymq_image(),
    )
    dock.wait_for_log(name, READY)
    return name, ports


def producer(ports):
    # No retries: the broker's error comes back as the delivery error itself.
    return Producer({"bootstrap.servers": f"127.0.0.1:{ports['kafka']}", "acks": "all", "retries": 0,
                     "enable.idempotence": False, "linger.ms": 0})


def produce_one(ports, value):
    errors = []
    p = producer(ports)
    p.produce("events", value=value, on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(30) == 0
    return errors[0]


def test_a_full_disk_nacks_and_recovers_once_space_is_freed(dock):
    name, ports = small_disk_broker(dock)
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", ports["amqp"], connection_attempts=5, retry_delay=0.2))
    ch = conn.channel()
    ch.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=2)
    ch.queue_declare("keep", durable=True)
    for i in range(10):
        ch.basic_publish("", "keep", f"kept-{i}".encode(), persistent)
    assert produce_one(ports, b"before") is None

    ch.queue_declare("fill", durable=True)
    confirmed = 0
    with pytest.raises(pika.exceptions.NackError):
        for _ in range(400):  # 100 MiB into 32 MiB
            ch.basic_publish("", "fill", CHUNK, persistent)
            confirmed += 1
    assert confirmed > 10, "the disk filled before the test's own data went in"
    dock.wait_for_log(name, "no space left")
    # Larger than the zeros a log writes ahead of its entries, so it needs new blocks.
    err = produce_one(ports, b"x" * 900_000)
    assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, err

    # The broker is still serving: what was confirmed is there.
    assert ch.queue_declare("fill", durable=True, passive=True).method.message_count == confirmed
    ch.queue_delete("fill")
    ch.basic_publish("", "keep", b"after", persistent)  # confirmed again: no NackError
    assert produce_one(ports, b"after") is None
    bodies = [body for _, _, body in get_all(ch, "keep")]
    assert bodies == [f"kept-{i}".encode() for i in range(10)] + [b"after"]
    conn.close()
    assert dock.state(name)["Running"], dock.logs(name)[-3000:]
