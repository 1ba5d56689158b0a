"""Topics and classic queues of the Kafka vhost share one namespace (DESIGN: "a stream is a
Kafka topic is an AMQP stream queue")."""

import pika
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_util import module_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "namespace")
    yield b
    b.stop()


def test_a_topic_cannot_take_the_name_of_a_queue(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    conn.channel().queue_declare("orders-q", durable=True)
    conn.close()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as exc:
        a.create_topics([NewTopic("orders-q", 1, 1)])["orders-q"].result(10)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert "queue" in exc.value.args[0].str()
    md = a.list_topics(topic="orders-q", timeout=10)
    assert md.topics["orders-q"].error is not None, "not auto-created either"
