"""Kafka ACLs with confluent-kafka's AdminClient (CreateAcls, DescribeAcls, DeleteAcls) and
their enforcement on producers, consumers, groups and Metadata: ALLOW and DENY, LITERAL and
PREFIXED, per principal; `allow_everyone_if_no_acl_found`; and where no ACL names a topic,
the user's vhost permissions decide, so one rule covers a topic and the stream queue it is."""

import uuid

import pika
import pytest
import requests
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from sec_util import add_user, kafka_listeners, secure_broker, wait_until

TAF = KafkaError.TOPIC_AUTHORIZATION_FAILED
GAF = KafkaError.GROUP_AUTHORIZATION_FAILED


def conf(broker, user, password):
    return {
        "bootstrap.servers": kafka_listeners(broker)["SASL_PLAINTEXT"],
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
    }


def acl(name, principal, op, permission=AclPermissionType.ALLOW, pattern=ResourcePatternType.LITERAL,
        resource=ResourceType.TOPIC):
    return AclBinding(resource, name, pattern, principal, "*", op, permission)


def create(admin, bindings):
    for future in admin.create_acls(bindings).values():
        future.result(10)


def produce(config, topic, value=b"v"):
    """The delivery error code of one message, or None."""
    errors = []
    p = Producer({**config, "message.timeout.ms": 5000})
    p.produce(topic, value, on_delivery=lambda e, m: errors.append(e))
    p.flush(10)
    assert errors, "no delivery report"
    return errors[0].code() if errors[0] else None


@pytest.fixture
def acl_broker(make_broker):
    b = secure_broker(make_broker, ("SASL_PLAINTEXT",))
    add_user(b, "alice", "alice-pw")
    add_user(b, "bob", "bob-pw")
    return b


@pytest.fixture
def admin(acl_broker):
    # guest is an administrator: a super user of the Kafka authorizer.
    return AdminClient(conf(acl_broker, "guest", "guest"))


def test_acls_are_created_described_and_deleted(acl_broker, admin):
    bindings = [
        acl("orders", "User:alice", AclOperation.READ),
        acl("logs-", "User:alice", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED),
        acl("logs-secret", "User:alice", AclOperation.WRITE, AclPermissionType.DENY),
        acl("g1", "User:bob", AclOperation.READ, resource=ResourceType.GROUP),
    ]
    create(admin, bindings)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert sorted(map(str, admin.describe_acls(everything).result(10))) == sorted(map(str, bindings))
    # MATCH: the ACLs that apply to the topic logs-secret (its literal one and the prefix).
    match = AclBindingFilter(ResourceType.TOPIC, "logs-secret", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert {b.name for b in admin.describe_acls(match).result(10)} == {"logs-", "logs-secret"}
    # Deleting by filter returns what it removed; the rest stay, also across a restart.
    deny = AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, None, None,
                            AclOperation.ANY, AclPermissionType.DENY)
    (deleted,) = [f.result(10) for f in admin.delete_acls([deny]).values()]
    assert [b.name for b in deleted] == ["logs-secret"]
    acl_broker.restart()
    admin = AdminClient(conf(acl_broker, "guest", "guest"))
    assert len(admin.describe_acls(everything).result(10)) == 3


def test_allow_deny_literal_and_prefixed_on_producers(acl_broker, admin):
    suffix = uuid.uuid4().hex[:6]
    create(admin, [
        acl("logs-", "User:alice", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED),
        acl("logs-", "User:alice", AclOperation.CREATE, pattern=ResourcePatternType.PREFIXED),
        acl(f"logs-secret-{suffix}", "User:alice", AclOperation.WRITE, AclPermissionType.DENY),
        acl(f"orders-{suffix}", "User:alice", AclOperation.READ),
    ])
    alice = conf(acl_broker, "alice", "alice-pw")
    assert produce(alice, f"logs-app-{suffix}") is None
    assert produce(alice, f"logs-secret-{suffix}") == TAF
    assert produce(conf(acl_broker, "guest", "guest"), f"orders-{suffix}") is None
    assert produce(alice, f"orders-{suffix}") == TAF  # READ only
    # bob has no ACL on these names, and ACLs exist for them: refused.
    assert produce(conf(acl_broker, "bob", "bob-pw"), f"logs-app-{suffix}") == TAF


def consume_one(config, topic, group):
    c = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    try:
        for _ in range(100):
            msg = c.poll(0.2)
            if msg is None:
                continue
            return msg.error().code() if msg.error() else msg.value()
    finally:
        c.close()
    return None


def test_consumers_need_read_on_the_topic_and_the_group(acl_broker, admin):
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    assert produce(conf(acl_broker, "guest", "guest"), topic, b"first") is None
    create(admin, [
        acl(topic, "User:alice", AclOperation.READ),
        acl("denied-", "User:alice", AclOperation.READ, AclPermissionType.DENY,
            pattern=ResourcePatternType.PREFIXED, resource=ResourceType.GROUP),
    ])
    alice = conf(acl_broker, "alice", "alice-pw")
    assert consume_one(alice, topic, "allowed-group") == b"first"
    assert consume_one(alice, topic, "denied-group") == GAF
    assert consume_one(conf(acl_broker, "bob", "bob-pw"), topic, "bobs") == TAF


def test_metadata_lists_only_topics_the_principal_may_describe(acl_broker, admin):
    suffix = uuid.uuid4().hex[:6]
    guest = conf(acl_broker, "guest", "guest")
    for name in ("visible", "hidden"):
        assert produce(guest, f"{name}-{suffix}") is None
    create(admin, [
        acl(f"visible-{suffix}", "User:alice", AclOperation.WRITE),
        acl(f"hidden-{suffix}", "User:bob", AclOperation.READ),
    ])
    topics = AdminClient(conf(acl_broker, "alice", "alice-pw")).list_topics(timeout=10).topics
    assert f"visible-{suffix}" in topics and f"hidden-{suffix}" not in topics
    assert f"hidden-{suffix}" in AdminClient(guest).list_topics(timeout=10).topics


def test_only_the_cluster_alter_right_manages_acls(acl_broker):
    alice = AdminClient(conf(acl_broker, "alice", "alice-pw"))
    with pytest.raises(KafkaException) as refused:
        create(alice, [acl("x", "User:alice", AclOperation.ALL)])
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_where_no_acl_names_a_topic_the_vhost_permissions_decide(acl_broker):
    """One rule for the topic and the stream queue it is: alice may read `shared-*` and write
    nothing, over AMQP and over Kafka alike."""
    requests.put(f"{acl_broker.http_url}/api/permissions/%2F/alice", auth=("guest", "guest"),
                 json={"configure": "", "write": "", "read": "^shared-.*"}, timeout=10).raise_for_status()
    topic = f"shared-{uuid.uuid4().hex[:6]}"
    assert produce(conf(acl_broker, "guest", "guest"), topic, b"hello") is None
    alice = conf(acl_broker, "alice", "alice-pw")
    assert consume_one(alice, topic, "alice-group") == b"hello"
    assert produce(alice, topic) == TAF
    other = f"other-{uuid.uuid4().hex[:6]}"
    assert produce(conf(acl_broker, "guest", "guest"), other) is None
    assert produce(alice, other) == TAF
    # The same topic as a stream queue over AMQP: alice may consume it, and not bind it (the
    # queue's write permission, as Kafka's WRITE).
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://alice:alice-pw@127.0.0.1:{acl_broker.amqp[1]}/%2F"))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    got = []
    ch.basic_consume(topic, lambda c, m, p, body: got.append(body), arguments={"x-stream-offset": "first"})
    wait_until(lambda: conn.process_data_events(0.1) or got, timeout=10, message="a stream delivery")
    assert got[0] == b"hello"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        ch.queue_bind(topic, "amq.fanout")
    assert refused.value.reply_code == 403
    assert f"access to queue '{topic}'" in refused.value.reply_text
    conn.close()


def test_allow_everyone_if_no_acl_found_false_refuses_anonymous(make_broker):
    b = secure_broker(make_broker, ("SASL_PLAINTEXT",),
                      env={"FERRYMQ_KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND": "false"})
    plain = {"bootstrap.servers": kafka_listeners(b)["PLAINTEXT"]}
    topic = f"anon-{uuid.uuid4().hex[:6]}"
    assert produce(plain, topic) == TAF
    create(AdminClient(conf(b, "guest", "guest")), [
        acl(topic, "User:ANONYMOUS", AclOperation.WRITE),
        acl(topic, "User:ANONYMOUS", AclOperation.CREATE),
    ])
    assert produce(plain, topic) is None
