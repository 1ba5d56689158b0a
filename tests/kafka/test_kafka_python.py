"""kafka-python 3.0.12: the default (idempotent) producer and a consumer group."""

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from kafka_util import module_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "kafka-python")
    yield b
    b.stop()


def test_the_default_producer_is_idempotent_and_a_group_reads_everything(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("kp-events", 3, 1)])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    assert producer.config["enable_idempotence"], "kafka-python 3 is idempotent by default"
    for i in range(2000):
        producer.send("kp-events", key=f"k{i % 13}".encode(), value=str(i).encode())
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        "kp-events", bootstrap_servers=broker.bootstrap, group_id="kp-group",
        auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000,
    )
    by_key = {}
    for m in consumer:
        by_key.setdefault(m.key, []).append(int(m.value))
        if sum(map(len, by_key.values())) == 2000:
            break
    consumer.commit()
    committed = {p: consumer.committed(TopicPartition("kp-events", p)) for p in range(3)}
    consumer.close()
    values = sorted(v for vs in by_key.values() for v in vs)
    assert values == list(range(2000)), "every record once"
    for key, vs in by_key.items():
        assert vs == sorted(vs), f"order of {key}"
    assert sum(committed.values()) == 2000

    # The group's position survives a new consumer: nothing left to read.
    again = KafkaConsumer(
        "kp-events", bootstrap_servers=broker.bootstrap, group_id="kp-group",
        auto_offset_reset="earliest", consumer_timeout_ms=2000,
    )
    assert list(again) == []
    again.close()
    groups = [g["group_id"] for g in admin.list_groups()]
    assert "kp-group" in groups
    admin.close()
