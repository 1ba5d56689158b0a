"""The AMQP view of a topic written by transactions: stream-queue consumers and the
topic-to-exchange fan-out deliver committed records only, after their commit, and never a
transaction marker or a record of an aborted transaction."""

import time

from confluent_kafka import Producer

from interop_helpers import (  # noqa: F401 (fixtures)
    StreamReader, bodies, broker, connect, create_topic, unique,
)


def transactional(broker, transactional_id):
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id})
    p.init_transactions(10)
    return p


def test_stream_consumers_and_the_fan_out_see_committed_records_only(broker):
    topic, exchange, queue = unique("txn-view"), unique("txn-view-x"), unique("txn-view-work")
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.exchange_declare(exchange, "fanout", durable=True)
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, exchange)
    conn.close()
    create_topic(broker, topic, config={"ferrymq.fanout.exchange": exchange})
    reader = StreamReader(broker.amqp_url, topic, offset="first")

    p = transactional(broker, unique("view"))
    p.begin_transaction()
    p.produce(topic, b"c1")
    p.produce(topic, b"c2")
    p.flush(10)
    # Produced but not committed: nothing is delivered yet.
    assert reader.settle(1.0) == []
    p.commit_transaction(10)
    assert bodies(reader.take(2)) == ["c1", "c2"]

    p.begin_transaction()
    p.produce(topic, b"aborted")
    p.abort_transaction(10)
    p.begin_transaction()
    p.produce(topic, b"c3")
    p.commit_transaction(10)
    # c3 follows c2 with no marker and no aborted record in between.
    got = reader.take(3)
    assert bodies(got) == ["c1", "c2", "c3"]
    assert bodies(reader.settle(0.5)) == ["c1", "c2", "c3"]
    # Offsets are the log's: c3 sits after the markers and the aborted record.
    offsets = [props.headers["x-stream-offset"] for _, props, _ in got]
    assert offsets[:2] == [0, 1] and offsets[2] > 2
    reader.close()

    conn = connect(broker.amqp_url)
    ch = conn.channel()
    fanned = []
    deadline = time.monotonic() + 15
    while len(fanned) < 3 and time.monotonic() < deadline:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        fanned.append(body.decode())
    time.sleep(0.5)
    assert ch.basic_get(queue, auto_ack=True)[0] is None, "nothing more"
    conn.close()
    assert fanned == ["c1", "c2", "c3"]
