"""The management API fields that monitoring tools read, after real pika and confluent-kafka
traffic:

- Celery Flower: `GET /api/queues/{vhost}` -> name, messages, messages_ready,
  messages_unacknowledged, consumers.
- KEDA's RabbitMQ scaler: `GET /api/queues/{vhost}/{queue}` -> messages (QueueLength mode),
  message_stats.publish_details.rate (MessageRate mode); with many queues the paged
  `?page=1&page_size=100&columns=name,messages` and the regex form.
- Testcontainers: waits on `GET /api/overview` (200 with guest) or the ready log line.
- ferrymq's Kafka view: `/api/kafka/groups/{id}` lag and members, `/api/kafka/topics/{t}`
  offsets, and the same topic as a stream queue under `/api/queues` (one log, two protocols).
- `/api/connections` and `/api/channels`: who is connected, as both protocols' clients.
"""

import time

import pytest

from conftest import Broker
from mgmt import (
    FAST_GROUPS, Deliveries, amqp_connect, commit, consume, ferrymq_api, kafka_consumer,
    kafka_producer, produce, publish, publish_confirmed, seg, unique, wait_until,
)

DEPTH_FIELDS = ("messages", "messages_ready", "messages_unacknowledged", "consumers")
SAMPLE_SECONDS = 5  # ferrymq samples rates every 5 s, as RabbitMQ's collect_statistics_interval


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("tool-fields") / "data", env=FAST_GROUPS).start()
    yield b
    b.stop()


@pytest.fixture
def api(broker):
    return ferrymq_api(broker)


def picked(item: dict, fields=DEPTH_FIELDS) -> dict:
    return {f: item.get(f) for f in fields}


def wait_fields(api, path: str, timeout: float = 10.0, **expected) -> dict:
    """Polls GET `path` until the JSON has every `expected` field value (bounded)."""
    return api.wait_for(path, lambda item: picked(item, expected) == expected, timeout=timeout)


def queue_path(name: str, vhost: str = "/") -> str:
    return f"/api/queues/{seg(vhost)}/{seg(name)}"


def test_depth_fields_follow_a_pika_consumer(broker, api):
    queue, total, prefetch = unique("fields-depth"), 10, 3
    path = queue_path(queue)
    publish_confirmed(broker, queue, total)
    wait_fields(api, path, messages=total, messages_ready=total, messages_unacknowledged=0, consumers=0)

    connection = amqp_connect(broker)
    try:
        channel = connection.channel()
        deliveries = Deliveries(connection, channel, queue, prefetch=prefetch)
        deliveries.pump_until(prefetch)
        wait_fields(api, path, messages=total, messages_ready=total - prefetch,
                    messages_unacknowledged=prefetch, consumers=1)
        consumer = api.queue("/", queue)["consumer_details"]
        assert [(c["prefetch_count"], c["ack_required"]) for c in consumer] == [(prefetch, True)]

        acked = 0
        while acked < total:  # ack what arrived; the broker tops the window up to `prefetch`
            deliveries.pump_until(min(prefetch, total - acked))
            acked += len(deliveries.tags)
            deliveries.ack_all()
        wait_fields(api, path, messages=0, messages_ready=0, messages_unacknowledged=0, consumers=1)
        stats = api.queue("/", queue)["message_stats"]
        assert (stats["publish"], stats["deliver"], stats["ack"]) == (total, total, total), stats
        channel.basic_cancel(deliveries.consumer_tag)
        wait_fields(api, path, consumers=0)
    finally:
        connection.close()


def test_publish_rate_becomes_positive_while_publishing(broker, api):
    queue, batch = unique("fields-rate"), 5
    publish_rate = lambda: api.queue("/", queue)["message_stats"]["publish_details"]["rate"]
    connection = amqp_connect(broker)
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        started, sent = time.monotonic(), 0

        def publishing_shows_a_rate():  # one step of steady publishing (~100/s), then a look
            nonlocal sent
            for _ in range(10):
                publish(channel, queue, batch)
                sent += batch
                connection.process_data_events(time_limit=0.05)
            return publish_rate() > 0

        # Two samples 5 s apart are needed: within 3 sampling periods of steady publishing.
        wait_until(publishing_shows_a_rate, timeout=3 * SAMPLE_SECONDS, interval=0,
                   message=lambda: f"publish_details.rate still {publish_rate()} after {sent} publishes")
        elapsed, rate = time.monotonic() - started, publish_rate()
        # Roughly the pace we publish at (the first sampled window may include idle time).
        assert rate <= 5 * sent / elapsed, (rate, sent, elapsed)
        overview = api.json("/api/overview")
        assert overview["message_stats"]["publish_details"]["rate"] > 0, overview["message_stats"]
        keda = api.json(queue_path(queue), params={"columns": "name,messages,message_stats.publish_details.rate"})
        assert keda["name"] == queue and keda["messages"] >= 1, keda
        assert keda["message_stats"]["publish_details"]["rate"] > 0, keda
    finally:
        connection.close()
    # Publishing stopped: the rate falls back to 0 (KEDA's MessageRate mode scales in on it).
    wait_until(lambda: publish_rate() == 0, timeout=3 * SAMPLE_SECONDS, interval=0.5,
               message=lambda: f"publish_details.rate still {publish_rate()} after publishing stopped")


def test_keda_paged_queue_listing(broker, api):
    prefix = unique("fields-keda")
    depths = {f"{prefix}-a": 3, f"{prefix}-b": 0, f"{prefix}-c": 5}
    for name, count in depths.items():
        publish_confirmed(broker, name, count)

    page = api.json("/api/queues/%2F", params={"page": 1, "page_size": 100, "columns": "name,messages"})
    assert (page["page"], page["page_size"], page["page_count"]) == (1, 100, 1), page
    assert page["total_count"] >= len(depths) and page["item_count"] == len(page["items"]), page
    assert all(set(item) == {"name", "messages"} for item in page["items"]), page["items"]
    listed = {item["name"]: item["messages"] for item in page["items"]}
    assert {name: listed.get(name) for name in depths} == depths

    # useRegex mode: KEDA sends pagination=false (ignored by RabbitMQ) and a name regex.
    regex = api.json("/api/queues/%2F", params={"page": 1, "use_regex": "true", "pagination": "false",
                                                "name": f"^{prefix}-[ac]$", "page_size": 100})
    assert sorted(item["name"] for item in regex["items"]) == [f"{prefix}-a", f"{prefix}-c"], regex
    assert regex["filtered_count"] == 2, regex
    for item in regex["items"]:
        assert picked(item, ("messages", "messages_ready", "messages_unacknowledged")) == {
            "messages": depths[item["name"]], "messages_ready": depths[item["name"]],
            "messages_unacknowledged": 0}
        assert item["message_stats"]["publish_details"]["rate"] >= 0


def test_flower_reads_the_vhost_queue_list(broker, api):
    queue = unique("fields-flower")
    publish_confirmed(broker, queue, 4)
    connection = amqp_connect(broker)
    try:
        deliveries = Deliveries(connection, connection.channel(), queue, prefetch=1)
        deliveries.pump_until(1)
        expected = {"name": queue, "messages": 4, "messages_ready": 3, "messages_unacknowledged": 1,
                    "consumers": 1}
        listing = api.wait_for("/api/queues/%2F", lambda items: any(
            picked(q, expected) == expected for q in items))
        assert all(isinstance(q[f], int) for q in listing for f in DEPTH_FIELDS), listing
    finally:
        connection.close()


def test_testcontainers_readiness(broker, api):
    assert any(
        f"amqp=127.0.0.1:{broker.amqp[1]}" in line and f"http=127.0.0.1:{broker.http[1]}" in line
        for line in broker.output if "ferrymq ready" in line
    ), broker.log_tail()
    r = api.get("/api/overview")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), r.text
    overview = r.json()
    assert overview["rabbitmq_version"] and overview["management_version"], overview
    ports = {(l["protocol"], l["port"]) for l in overview["listeners"]}
    assert {("amqp", broker.amqp[1]), ("http", broker.http[1])} <= ports, ports
    assert api.get("/api/overview", auth=False).status_code == 401


def test_overview_and_vhost_totals_count_both_protocols(broker, api):
    """One log, two protocols: records produced over Kafka are publishes into a stream queue,
    in every total as in the queue's own message_stats and rabbitmq_queue_messages_published_total."""
    publish_confirmed(broker, unique("fields-totals-q"), 3)
    produce(broker, unique("fields-totals-topic"), 4)
    queues = api.json("/api/queues/%2F")
    published = sum(q.get("message_stats", {}).get("publish", 0) for q in queues)
    depth = sum(q["messages"] for q in queues)
    overview, vhost = api.json("/api/overview"), api.json("/api/vhosts/%2F")
    assert overview["queue_totals"]["messages"] == vhost["messages"] == depth
    assert {"overview": overview["message_stats"]["publish"], "vhost": vhost["message_stats"]["publish"]} == {
        "overview": published, "vhost": published}, "message_stats.publish leaves out Kafka records"


def test_group_lag_members_and_topic_as_stream_queue(broker, api):
    topic, group, records = unique("fields-topic"), unique("fields-group"), 10
    group_path = f"/api/kafka/groups/{seg(group)}"
    produce(broker, topic, records)

    topic_info = api.json(f"/api/kafka/topics/{seg(topic)}")
    assert (topic_info["messages"], topic_info["partitions"]) == (records, 1), topic_info
    assert [(p["partition"], p["log_start_offset"], p["log_end_offset"], p["high_watermark"])
            for p in topic_info["partition_details"]] == [(0, 0, records, records)]
    stream = api.json(queue_path(topic))
    assert (stream["type"], stream["messages"], stream["messages_ready"]) == ("stream", records, records)
    assert stream["arguments"].get("x-queue-type") == "stream", stream["arguments"]

    consumer = kafka_consumer(broker, group, topic)
    try:
        consume(consumer, records)
        for committed in (4, records):
            commit(consumer, topic, committed)
            lag = records - committed
            info = api.wait_for(group_path, lambda g: g["lag"] == lag and [
                (o["topic"], o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"])
                for o in g["offsets"]] == [(topic, 0, committed, records, lag)])
            members = info["members"]
            assert len(members) == 1, members
            assert members[0]["client_id"] == group + "-client", members
            assert members[0]["assignments"] == [{"topic": topic, "partition": 0}], members
            assert info["state"] == "Stable" and info["protocol_type"] == "consumer", info
        listed = [g["group_id"] for g in api.json("/api/kafka/groups")]
        assert group in listed, listed
    finally:
        consumer.close()
    api.wait_for(group_path, lambda g: g["members"] == [] and g["lag"] == 0)


def test_connections_and_channels_of_both_protocols(broker, api):
    name, client_id, prefetch = unique("fields-conn"), unique("fields-kafka-client"), 7
    connection = amqp_connect(broker, connection_name=name)
    producer = kafka_producer(broker, **{"client.id": client_id})
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)
        produce(broker, unique("fields-conn-topic"), 1, producer=producer)

        def ours(items):
            amqp = [c for c in items if c["client_properties"].get("connection_name") == name]
            kafka = [c for c in items if c["protocol"] == "Kafka"
                     and client_id in c["client_properties"].values()]
            return amqp and kafka and (amqp[0], kafka[0])

        amqp, kafka = wait_until(lambda: ours(api.json("/api/connections")),
                                 message="pika and Kafka connections listed")
        assert (amqp["protocol"], amqp["user"], amqp["vhost"]) == ("AMQP 0-9-1", "guest", "/"), amqp
        assert amqp["client_properties"]["product"] == "Pika Python Client Library", amqp
        assert amqp["channels"] == 1 and amqp["state"] == "running", amqp
        assert kafka["peer_host"] == "127.0.0.1" and kafka["port"] == broker.kafka[1], kafka

        channels = [c for c in api.json("/api/channels") if c["connection_details"]["name"] == amqp["name"]]
        assert [(c["number"], c["prefetch_count"], c["user"], c["vhost"]) for c in channels] == [
            (channel.channel_number, prefetch, "guest", "/")], channels
        assert api.json(f"/api/connections/{seg(amqp['name'])}")["user_provided_name"] == name
    finally:
        connection.close()
