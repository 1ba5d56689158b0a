"""Helpers shared by the AMQP tests (imported by name: conftest modules are not)."""

import itertools
import os
import time
import uuid

import pika

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
