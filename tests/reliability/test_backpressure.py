"""Back-pressure from a consumer that stops reading its socket: the broker stops delivering to
it (the consumer's window and the connection's bounded output queue) and its memory stays flat
while a publisher keeps going; the messages wait in the queue, on disk beyond the queue cache."""

import json
import urllib.request

import pika

MIB = 1024 * 1024
CACHE = 16 * MIB


def mem_used(broker) -> int:
    request = urllib.request.Request(broker.http_url + "/api/nodes")
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)[0]["mem_used"]


def test_a_consumer_that_stops_reading_leaves_broker_memory_flat(make_broker):
    b = make_broker(env={"FERRYMQ_STORAGE_QUEUE_CACHE_BYTES": str(CACHE)})
    params = pika.URLParameters(b.amqp_url)
    stalled = pika.BlockingConnection(params)
    sch = stalled.channel()
    sch.queue_declare("flood", durable=True)
    sch.basic_qos(prefetch_count=0)  # no prefetch limit: only the broker's own bounds hold
    sch.basic_consume("flood", lambda *_: None)
    # From here on this client never reads its socket again.

    publisher = pika.BlockingConnection(params)
    pch = publisher.channel()
    body = b"p" * 4096
    persistent = pika.BasicProperties(delivery_mode=2)
    baseline = mem_used(b)
    samples = []
    for batch in range(24):  # 24 x 1,024 x 4 KiB = 96 MiB, six times the queue cache
        for _ in range(1024):
            pch.basic_publish("", "flood", body, persistent)
        # A round trip after the batch: the broker has taken every message before it.
        pch.queue_declare("flood", durable=True, passive=True)
        samples.append(mem_used(b))
    growth = max(samples) - baseline
    assert growth < CACHE + 48 * MIB, f"memory grew {growth / MIB:.1f} MiB: {samples}"
    # The last third grows no more than noise: flat, not a slope.
    tail = samples[16:]
    assert max(tail) - min(tail) < 16 * MIB, [s // MIB for s in samples]

    counts = pch.queue_declare("flood", durable=True, passive=True).method
    assert counts.message_count > 20_000, "the messages wait in the queue"
    publisher.close()
    stalled.close()
