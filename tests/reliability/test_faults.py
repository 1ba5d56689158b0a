"""Faults a client causes: a consumer that falls silent gives its deliveries back."""

import time

import pika

from conftest import wait_until


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
