"""Fixtures for the AMQP tests.

`peer` runs a test twice: against ferrymq and against a real RabbitMQ (Debian's
rabbitmq-server, started once per session). The same client code and the same assertions
run against both, so such a test pins ferrymq to RabbitMQ's observable behaviour. Tests
that only make sense for ferrymq (or that RabbitMQ 3.10 answers differently on purpose,
see docs/amqp.md) use `amqp_url` alone.
"""

import pika
import pytest


@pytest.fixture
def amqp_url(shared_broker) -> str:
    return shared_broker.amqp_url


class Peer:
    def __init__(self, name: str, url: str):
        self.name = name
        self.url = url

    @property
    def is_rabbitmq(self) -> bool:
        return self.name == "rabbitmq"

    def connect(self, **params) -> pika.BlockingConnection:
        p = pika.URLParameters(self.url)
        for k, v in params.items():
            setattr(p, k, v)
        return pika.BlockingConnection(p)

    def __repr__(self):
        return self.name


@pytest.fixture(params=["ferrymq", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def peer(request, shared_broker) -> Peer:
    if request.param == "rabbitmq":
        rabbit = request.getfixturevalue("rabbitmq")
        return Peer("rabbitmq", rabbit.amqp_url)
    return Peer("ferrymq", shared_broker.amqp_url)
