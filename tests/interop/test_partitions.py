"""Multi-partition topics over AMQP: consumers read every partition (per-key order kept,
`x-stream-partition` on each delivery, or one partition with the consumer argument), and
AMQP publishes pick the partition from the routing key exactly as Kafka's default (murmur2)
partitioner does: confluent-kafka with `partitioner=murmur2_random` agrees; librdkafka's own
default (`consistent_random`, CRC-32) does not."""

import zlib

from interop_helpers import (  # noqa: F401 (fixtures)
    StreamReader, bodies, broker, connect, create_topic, kafka_read, produce, producer,
    unique,
)

KEYS = [f"customer-{i}" for i in range(12)]


def test_a_three_partition_topic_is_consumed_over_amqp_with_per_key_order(broker):
    topic = unique("payments")
    create_topic(broker, topic, partitions=3)
    p = producer(broker, partitioner="murmur2_random")
    records = [(key, f"{key}:{seq}", None, None) for seq in range(5) for key in KEYS]
    partitions = produce(p, topic, records, flush_each=False)
    placed = {key: part for (key, _, _, _), part in zip(records, partitions)}
    assert len(set(placed.values())) == 3, "the keys spread over every partition"

    reader = StreamReader(broker.amqp_url, topic, offset="first")
    got = reader.take(len(records))
    reader.close()
    assert len(got) == len(records)
    for key in KEYS:
        mine = [(p, b.decode()) for _, p, b in got if b.decode().startswith(key + ":")]
        assert [b for _, b in mine] == [f"{key}:{seq}" for seq in range(5)], "per-key order"
        assert {p.headers["x-stream-partition"] for p, _ in mine} == {placed[key]}
        routing_keys = {m.routing_key for m, _, b in got if b.decode().startswith(key + ":")}
        assert routing_keys == {key}
    # Offsets are per partition: each partition's deliveries count up from 0.
    for part in range(3):
        offs = [p.headers["x-stream-offset"] for _, p, _ in got if p.headers["x-stream-partition"] == part]
        assert offs == list(range(len(offs)))

    # One partition only, with the consumer argument.
    reader = StreamReader(broker.amqp_url, topic, offset="first", arguments={"x-stream-partition": 1})
    expected = sum(1 for k, _, _, _ in records if placed[k] == 1)
    got = reader.take(expected)
    assert len(reader.settle(0.3)) == expected
    assert {p.headers["x-stream-partition"] for _, p, _ in got} == {1}
    reader.close()


def test_amqp_publishes_land_where_a_kafka_producer_puts_the_key(broker):
    topic = unique("routed")
    create_topic(broker, topic, partitions=5)
    # Where confluent-kafka's murmur2 partitioner puts each key (the Java client's choice).
    kafka_side = produce(
        producer(broker, partitioner="murmur2_random"),
        topic,
        [(key, "from-kafka", None, None) for key in KEYS],
        flush_each=False,
    )
    expected = dict(zip(KEYS, kafka_side))
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(topic + "-x", "direct")
    for key in KEYS:
        ch.queue_bind(topic, topic + "-x", key)
        ch.basic_publish(topic + "-x", key, b"from-amqp")
    conn.close()
    for part in range(5):
        records = kafka_read(broker, topic, sum(2 for k in KEYS if expected[k] == part), partitions=(part,))
        by_source = {}
        for r in records:
            by_source.setdefault(r.value(), []).append(r.key().decode())
        assert sorted(by_source.get(b"from-amqp", [])) == sorted(
            k for k in KEYS if expected[k] == part
        ), f"partition {part}"
    # librdkafka's default partitioner hashes with CRC-32 and would disagree for some keys:
    # that is why producers that mix with AMQP publishers should use murmur2_random.
    crc = {key: (zlib.crc32(key.encode()) & 0xFFFFFFFF) % 5 for key in KEYS}
    assert any(crc[k] != expected[k] for k in KEYS)


def test_unkeyed_amqp_publishes_spread_over_the_partitions(broker):
    topic = unique("spread")
    create_topic(broker, topic, partitions=3)
    conn = connect(broker.amqp_url)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(topic + "-x", "fanout")
    ch.queue_bind(topic, topic + "-x")
    for i in range(9):
        ch.basic_publish(topic + "-x", "", f"{i}".encode())
    conn.close()
    for part in range(3):
        assert len(kafka_read(broker, topic, 3, partitions=(part,))) == 3
    reader = StreamReader(broker.amqp_url, topic, offset="first")
    assert sorted(bodies(reader.take(9)), key=int) == [str(i) for i in range(9)]
    reader.close()
