"""Helpers and fixtures shared by the AMQP tests.

Test modules import what they use from here by name (fixtures included): a second
`conftest.py` would shadow the suite's root one, which other suites import by name.

`peer` runs a test twice: against ferrymq and against a real RabbitMQ (Debian's
rabbitmq-server, started once per session). The same client code and the same assertions
run against both, so such a test pins ferrymq to RabbitMQ's observable behaviour. Tests
that only make sense for ferrymq (or that RabbitMQ 3.10 answers differently on purpose,
see docs/amqp.md) use `amqp_url` alone.
"""

import itertools
import os
import time
import uuid

import pika
import pytest

_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test uses (tests share a broker per module)."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def connect(url: str, **params) -> pika.BlockingConnection:
    p = pika.URLParameters(url)
    for k, v in params.items():
        setattr(p, k, v)
    return pika.BlockingConnection(p)


def wait_until(conn, condition, timeout: float = 5.0) -> bool:
    """Processes a BlockingConnection's events until `condition()` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        conn.process_data_events(time_limit=0.05)
    return True



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
