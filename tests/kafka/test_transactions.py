"""Kafka transactions with confluent-kafka's transactional producer: commits and aborts across
partitions of two topics, read_committed against read_uncommitted consumers, offsets sent to
the transaction, fencing of an older producer instance, and the transaction timeout."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_util import module_broker, wait_until


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "txn")
    yield b
    b.stop()


def create(broker, *topics):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for name, partitions in topics:
        admin.create_topics([NewTopic(name, partitions)])[name].result(timeout=10)


def producer(broker, transactional_id, **extra):
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id,
                  **extra})
    p.init_transactions(10)
    return p


def read_all(broker, topics, isolation, expected=None, timeout=15):
    """Every value of `topics` from the beginning, as a consumer with `isolation` sees them."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"read-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.subscribe(topics)
    got = []

    def more():
        msg = c.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append((msg.topic(), msg.partition(), msg.value()))
        return expected is not None and len(got) >= expected

    try:
        if expected is None:
            # Until nothing more arrives for a while.
            idle = 0
            while idle < 6:
                before = len(got)
                more()
                idle = idle + 1 if len(got) == before else 0
        else:
            wait_until(more, timeout=timeout, interval=0, message=f"{expected} records")
    finally:
        c.close()
    return got


def test_commit_and_abort_across_partitions_of_two_topics(broker):
    create(broker, ("txn-a", 2), ("txn-b", 1))
    p = producer(broker, "tx-multi")
    p.begin_transaction()
    for i in range(6):
        p.produce("txn-a", f"committed-{i}".encode(), partition=i % 2)
    p.produce("txn-b", b"committed-b", partition=0)
    p.commit_transaction(10)
    p.begin_transaction()
    p.produce("txn-a", b"aborted-a", partition=0)
    p.produce("txn-b", b"aborted-b", partition=0)
    p.flush(10)
    p.abort_transaction(10)

    committed = read_all(broker, ["txn-a", "txn-b"], "read_committed")
    values = sorted(v for _, _, v in committed)
    assert values == sorted([f"committed-{i}".encode() for i in range(6)] + [b"committed-b"])
    # Per partition, in the order produced.
    part0 = [v for t, part, v in committed if (t, part) == ("txn-a", 0)]
    assert part0 == [b"committed-0", b"committed-2", b"committed-4"]

    everything = read_all(broker, ["txn-a", "txn-b"], "read_uncommitted")
    assert sorted(v for _, _, v in everything) == sorted(values + [b"aborted-a", b"aborted-b"])


def test_an_open_transaction_holds_read_committed_consumers_until_it_commits(broker):
    create(broker, ("txn-open", 1))
    p = producer(broker, "tx-open")
    p.begin_transaction()
    p.produce("txn-open", b"pending")
    p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "open-reader",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.assign([TopicPartition("txn-open", 0, 0)])
    assert c.poll(2) is None, "nothing is readable before the commit"
    # The last stable offset is where the transaction began; the high watermark past it.
    low, high = c.get_watermark_offsets(TopicPartition("txn-open", 0), timeout=5)
    assert (low, high) == (0, 0)
    p.commit_transaction(10)
    msg = wait_until(lambda: c.poll(0.5), timeout=10, message="the committed record")
    assert msg.value() == b"pending"
    c.close()


def test_offsets_sent_to_a_transaction_are_committed_with_it(broker):
    create(broker, ("txn-in", 1), ("txn-out", 1))
    feeder = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        feeder.produce("txn-in", f"in-{i}".encode())
    feeder.flush(10)
    group = "eos-group"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe(["txn-in"])
    p = producer(broker, "tx-eos")
    consumed = []
    wait_until(lambda: (m := c.poll(0.5)) is not None and m.error() is None
               and consumed.append(m) is None and len(consumed) >= 3,
               timeout=20, interval=0, message="three input records")
    p.begin_transaction()
    for m in consumed:
        p.produce("txn-out", m.value().replace(b"in", b"out"))
    p.send_offsets_to_transaction(
        [TopicPartition("txn-in", 0, consumed[-1].offset() + 1)], c.consumer_group_metadata(), 10)
    p.abort_transaction(10)
    assert c.committed([TopicPartition("txn-in", 0)], timeout=10)[0].offset < 0, \
        "an aborted transaction commits no offset"
    p.begin_transaction()
    p.produce("txn-out", b"out-final")
    p.send_offsets_to_transaction(
        [TopicPartition("txn-in", 0, consumed[-1].offset() + 1)], c.consumer_group_metadata(), 10)
    p.commit_transaction(10)
    assert c.committed([TopicPartition("txn-in", 0)], timeout=10)[0].offset == 3
    c.close()
    out = [v for _, _, v in read_all(broker, ["txn-out"], "read_committed", expected=1)]
    assert out == [b"out-final"]


def test_a_second_instance_fences_the_first_and_aborts_its_transaction(broker):
    create(broker, ("txn-fence", 1))
    old = producer(broker, "tx-fenced")
    old.begin_transaction()
    old.produce("txn-fence", b"from-the-old-instance")
    old.flush(10)
    new = producer(broker, "tx-fenced")  # aborts the old instance's transaction
    new.begin_transaction()
    new.produce("txn-fence", b"from-the-new-instance")
    new.commit_transaction(10)
    with pytest.raises(KafkaException) as fenced:
        old.commit_transaction(10)
    error = fenced.value.args[0]
    assert error.fatal() or error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                             KafkaError.INVALID_PRODUCER_EPOCH), error
    values = [v for _, _, v in read_all(broker, ["txn-fence"], "read_committed", expected=1)]
    assert values == [b"from-the-new-instance"]


def test_a_transaction_past_its_timeout_is_aborted(broker):
    create(broker, ("txn-slow", 1))
    p = producer(broker, "tx-slow", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce("txn-slow", b"too-late")
    p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "slow-reader",
                  "isolation.level": "read_committed"})
    # The coordinator aborts it: the last stable offset passes the aborted records.
    wait_until(lambda: c.get_watermark_offsets(TopicPartition("txn-slow", 0), timeout=5)[1] >= 2,
               timeout=15, message="the abort marker")
    c.close()
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    assert read_all(broker, ["txn-slow"], "read_committed") == []


def test_kafka_python_and_aiokafka_transactional_producers_read_back_by_kcat(broker):
    import asyncio

    from aiokafka import AIOKafkaProducer
    from kafka import KafkaProducer

    from kafka_util import kcat, require_kcat

    require_kcat()
    create(broker, ("txn-clients", 1))
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="tx-kafka-python")
    kp.init_transactions()
    kp.begin_transaction()
    kp.send("txn-clients", b"kafka-python-committed")
    kp.commit_transaction()
    kp.begin_transaction()
    kp.send("txn-clients", b"kafka-python-aborted")
    kp.flush()
    kp.abort_transaction()
    kp.close()

    async def aio():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="tx-aiokafka")
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait("txn-clients", b"aiokafka-committed")
            await p.begin_transaction()
            await p.send_and_wait("txn-clients", b"aiokafka-aborted")
            await p.abort_transaction()
        finally:
            await p.stop()

    asyncio.run(aio())

    committed = kcat(broker, "-C", "-t", "txn-clients", "-o", "beginning", "-e", "-q",
                     "-X", "isolation.level=read_committed").split()
    assert committed == ["kafka-python-committed", "aiokafka-committed"]
    everything = kcat(broker, "-C", "-t", "txn-clients", "-o", "beginning", "-e", "-q",
                      "-X", "isolation.level=read_uncommitted").split()
    assert everything == ["kafka-python-committed", "kafka-python-aborted",
                          "aiokafka-committed", "aiokafka-aborted"]


class AppRestart(Exception):
    """The test's application gives up its clients and starts again."""


def test_consume_transform_produce_is_exactly_once_across_a_broker_kill(make_broker):
    """An exactly-once loop (input -> output with the input offsets in each transaction) with
    the broker killed -9 part-way, in the middle of a transaction whose records are already in
    the log: the application starts again with new clients, and every input record is in the
    output exactly once (read_committed)."""
    import threading

    from kafka_util import FAST_GROUPS

    b = make_broker(env=FAST_GROUPS)
    create(b, ("eos-in", 1), ("eos-out", 1))
    total = 300
    feeder = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True})
    for i in range(total):
        feeder.produce("eos-in", f"{i:04}".encode())
    feeder.flush(10)
    feeder = None
    tp = TopicPartition("eos-in", 0)
    progress = {"committed": 0, "restarts": 0}
    killed = threading.Event()

    def committed_offset(consumer):
        offset = consumer.committed([tp], timeout=5)[0].offset
        return max(offset, 0)

    def run_once():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "eos-loop",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "isolation.level": "read_committed", "session.timeout.ms": 6000})
        p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "eos-loop-tx",
                      "transaction.timeout.ms": 10000})
        try:
            p.init_transactions(20)
            c.assign([TopicPartition("eos-in", 0, committed_offset(c))])
            while progress["committed"] < total:
                batch = c.consume(10, 1.0)
                batch = [m for m in batch if m.error() is None]
                if not batch:
                    progress["committed"] = committed_offset(c)
                    continue
                p.begin_transaction()
                for m in batch:
                    p.produce("eos-out", m.value())
                p.flush(20)
                if progress["committed"] >= total // 3 and not killed.is_set():
                    # Mid-transaction: its records are in the log, not committed. The broker
                    # dies; the application restarts too (new consumer, new producer instance).
                    killed.set()
                    b.restart(crash=True)
                    raise AppRestart()
                p.send_offsets_to_transaction([TopicPartition("eos-in", 0, batch[-1].offset() + 1)],
                                              c.consumer_group_metadata(), 20)
                p.commit_transaction(20)
                progress["committed"] = batch[-1].offset() + 1
        finally:
            c.close()

    deadline = time.monotonic() + 90
    while progress["committed"] < total and time.monotonic() < deadline:
        try:
            run_once()
        except (KafkaException, AppRestart):
            progress["restarts"] += 1
    assert killed.is_set(), "the broker was killed part-way"
    assert progress["committed"] == total, progress
    out = [v for _, _, v in read_all(b, ["eos-out"], "read_committed", expected=total, timeout=30)]
    assert sorted(out) == [f"{i:04}".encode() for i in range(total)], (len(out), progress)
    # The transaction the kill interrupted is in the log, aborted at restart.
    everything = read_all(b, ["eos-out"], "read_uncommitted", expected=total + 1, timeout=30)
    assert len(everything) > total


def test_operators_list_and_describe_transactions_with_kafka_python(broker):
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KTopicPartition

    create(broker, ("txn-ops", 2))
    p = producer(broker, "tx-ops", **{"transaction.timeout.ms": 30000})
    p.begin_transaction()
    p.produce("txn-ops", b"open", partition=1)
    p.flush(10)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # One broker: node 0 lists every transactional id.
        (rows,) = admin.list_transactions().values()
        listed = {t.transactional_id: t for t in rows}
        assert listed["tx-ops"].state.value == "Ongoing"
        (ongoing,) = admin.list_transactions(state_filters=["Ongoing"]).values()
        assert [t.transactional_id for t in ongoing] == ["tx-ops"]
        described = admin.describe_transactions(["tx-ops"])["tx-ops"]
        assert described.state.value == "Ongoing"
        assert described.transaction_timeout_ms == 30000
        assert described.transaction_start_time_ms > 0
        assert described.topic_partitions == {KTopicPartition("txn-ops", 1)}
        assert described.producer_id == listed["tx-ops"].producer_id
        p.commit_transaction(10)
        described = admin.describe_transactions(["tx-ops"])["tx-ops"]
        assert described.state.value == "CompleteCommit" and not described.topic_partitions
        with pytest.raises(Exception) as unknown:
            admin.describe_transactions(["tx-never-used"])
        assert "TransactionalIdNotFound" in type(unknown.value).__name__, unknown.value
    finally:
        admin.close()
