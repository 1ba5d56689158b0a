"""Consumer-group behaviour with confluent-kafka: session expiry, leave, static membership,
and the group admin APIs."""

import subprocess
import sys
import textwrap
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_util import module_broker, wait_until


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "groups", env={"FERRYMQ_KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS": "500"})
    yield b
    b.stop()


def create(broker, topic, partitions):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


class Member:
    """A consumer polled from the test thread, recording its assignments."""

    def __init__(self, broker, group, topic, **conf):
        self.assigned = set()
        self.assignments = 0
        self.revocations = 0
        self.c = Consumer({
            "bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "session.timeout.ms": 1500, "heartbeat.interval.ms": 200, **conf,
        })
        self.c.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke)

    def _assign(self, _c, parts):
        self.assignments += 1
        self.assigned = {p.partition for p in parts}

    def _revoke(self, _c, _parts):
        self.revocations += 1
        self.assigned = set()

    def poll(self, seconds=0.2):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.c.poll(0.05)


def poll_until(members, predicate, timeout=20, message="group state"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.poll(0.05)
        if predicate():
            return
    raise AssertionError(f"{message} not reached in {timeout}s")


def test_a_killed_member_expires_after_its_session_and_the_rest_take_over(broker):
    create(broker, "expiry", 4)
    script = textwrap.dedent(f"""
        from confluent_kafka import Consumer
        c = Consumer({{"bootstrap.servers": "{broker.bootstrap}", "group.id": "expiry-group",
                      "session.timeout.ms": 1500, "heartbeat.interval.ms": 200}})
        c.subscribe(["expiry"], on_assign=lambda c, p: print("assigned", len(p), flush=True))
        while True:
            c.poll(0.1)
    """)
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        survivor = Member(broker, "expiry-group", "expiry")
        poll_until([survivor], lambda: len(survivor.assigned) == 2, message="partitions shared")
        victim.kill()
        victim.wait(5)
        started = time.monotonic()
        poll_until([survivor], lambda: survivor.assigned == {0, 1, 2, 3}, message="survivor owns all")
        assert time.monotonic() - started < 10
        survivor.c.close()
    finally:
        victim.kill()


def test_leaving_rebalances_at_once_and_describe_reports_members(broker):
    create(broker, "leaving", 2)
    a, b = Member(broker, "leave-group", "leaving"), Member(broker, "leave-group", "leaving")
    poll_until([a, b], lambda: len(a.assigned) == 1 and len(b.assigned) == 1, message="one each")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_consumer_groups(["leave-group"])["leave-group"].result(10)
    assert described.state.name == "STABLE" and len(described.members) == 2
    assert {m.client_id for m in described.members} == {"rdkafka"}
    b.c.close()
    started = time.monotonic()
    poll_until([a], lambda: a.assigned == {0, 1}, message="remaining member owns both")
    assert time.monotonic() - started < 5, "a leave does not wait for the session timeout"
    with pytest.raises(KafkaException):
        admin.delete_consumer_groups(["leave-group"])["leave-group"].result(10)
    a.c.close()
    wait_until(lambda: admin.describe_consumer_groups(["leave-group"])["leave-group"].result(10).state.name == "EMPTY")
    admin.delete_consumer_groups(["leave-group"])["leave-group"].result(10)
    listed = [g.group_id for g in admin.list_consumer_groups().result(10).valid]
    assert "leave-group" not in listed


def test_a_static_member_restarts_without_a_rebalance(broker):
    create(broker, "static", 2)
    a = Member(broker, "static-group", "static", **{"group.instance.id": "a", "session.timeout.ms": 6000})
    b = Member(broker, "static-group", "static", **{"group.instance.id": "b", "session.timeout.ms": 6000})
    poll_until([a, b], lambda: len(a.assigned) == 1 and len(b.assigned) == 1, message="one each")
    # Counted from here: how the two members first settled (one generation, or two when one
    # joined after the initial delay) is not what this test is about.
    b_assignments, b_revocations = b.assignments, b.revocations
    a_partitions = a.assigned
    a.c.close()  # a static member does not leave the group on close
    a2 = Member(broker, "static-group", "static", **{"group.instance.id": "a", "session.timeout.ms": 6000})
    poll_until([a2, b], lambda: a2.assigned == a_partitions, message="restarted member gets its partition back")
    b.poll(1.0)
    assert (b.assignments, b.revocations) == (b_assignments, b_revocations), \
        f"the restart of a static member rebalanced the other member: assignments " \
        f"{b_assignments} -> {b.assignments}, revocations {b_revocations} -> {b.revocations}"
    a2.c.close()
    b.c.close()


def test_cooperative_sticky_rebalancing_hands_partitions_over(broker):
    create(broker, "coop", 4)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Member(broker, "coop-group", "coop", **conf)
    # Incremental callbacks: on_assign adds, on_revoke removes.
    a.c.unsubscribe()
    owned = {"a": set(), "b": set()}

    def assign(name):
        return lambda c, parts: owned[name].update(p.partition for p in parts)

    def revoke(name):
        return lambda c, parts: owned[name].difference_update(p.partition for p in parts)

    a.c.subscribe(["coop"], on_assign=assign("a"), on_revoke=revoke("a"))
    poll_until([a], lambda: owned["a"] == {0, 1, 2, 3}, message="a owns all")
    b = Member(broker, "coop-group", "coop", **conf)
    b.c.unsubscribe()
    b.c.subscribe(["coop"], on_assign=assign("b"), on_revoke=revoke("b"))
    poll_until([a, b], lambda: len(owned["a"]) == 2 and len(owned["b"]) == 2 and not owned["a"] & owned["b"],
               message="cooperative hand-over")
    a.c.close()
    b.c.close()
