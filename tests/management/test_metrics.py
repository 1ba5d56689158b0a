"""Prometheus metrics after real traffic: `promtool check metrics` lints both pages clean, and
the figures follow what pika and confluent-kafka did.

`/metrics` sums every queue into one unlabelled series (RabbitMQ's aggregated form),
`/metrics/per-object` labels every queue, and both carry per-vhost sums (`ferrymq_vhost_*`);
Kafka figures use kafka_exporter's names. Neither needs credentials, as
RabbitMQ's prometheus plugin. The optional `[metrics]` listener serves the same two pages.
"""

from dataclasses import dataclass

import pytest

from conftest import Broker
from mgmt import (
    FAST_GROUPS, Api, Deliveries, amqp_connect, commit, consume, drain, ferrymq_api,
    kafka_consumer, produce, promtool_check, publish_confirmed, scrape, seg, unique, wait_until,
)

# Queue name suffix -> (messages published, messages consumed and acked).
QUEUE_PLAN = {"half": (7, 3), "untouched": (5, 0), "drained": (4, 4)}
OTHER_VHOST_MESSAGES = 2
TOPIC_RECORDS = 10
HELD = 3  # deliveries a live consumer holds unacknowledged
QUEUE_FAMILIES = (
    "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages",
    "rabbitmq_queue_consumers", "rabbitmq_queue_messages_published_total",
    "rabbitmq_queue_messages_delivered_total", "rabbitmq_queue_messages_acked_total",
)
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


@dataclass
class Traffic:
    queues: dict       # name (vhost "/") -> (published, consumed)
    other_vhost: str
    other_queue: str   # in other_vhost, OTHER_VHOST_MESSAGES ready
    topic: str         # TOPIC_RECORDS records in partition 0
    group: str         # committed every record of `topic`


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("metrics") / "data", env=FAST_GROUPS).start()
    yield b
    b.stop()


def make_vhost(broker, name: str):
    api = ferrymq_api(broker)
    assert api.put(f"/api/vhosts/{seg(name)}").status_code in (201, 204)
    r = api.put(f"/api/permissions/{seg(name)}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    assert r.status_code in (201, 204), r.text


@pytest.fixture(scope="module")
def traffic(broker) -> Traffic:
    queues = {}
    for suffix, (published, consumed) in QUEUE_PLAN.items():
        name = unique(f"metrics-{suffix}")
        publish_confirmed(broker, name, published)
        if consumed:
            drain(broker, name, consumed)
        queues[name] = (published, consumed)
    other_vhost, other_queue = unique("metrics-vhost"), unique("metrics-other")
    make_vhost(broker, other_vhost)
    publish_confirmed(broker, other_queue, OTHER_VHOST_MESSAGES, vhost=other_vhost)
    topic, group = unique("metrics-topic"), unique("metrics-group")
    produce(broker, topic, TOPIC_RECORDS)
    consumer = kafka_consumer(broker, group, topic)
    try:
        consume(consumer, TOPIC_RECORDS)
        commit(consumer, topic, TOPIC_RECORDS)
    finally:
        consumer.close()
    return Traffic(queues, other_vhost, other_queue, topic, group)


@dataclass
class LiveClients:
    queue: str    # HELD of its messages unacknowledged by a live consumer
    group: str    # one live member on traffic.topic


@pytest.fixture
def live_clients(broker, traffic):
    """A pika consumer holding HELD deliveries and a live Kafka group member, while the test runs."""
    queue, group = unique("metrics-held"), unique("metrics-live")
    publish_confirmed(broker, queue, HELD + 2)
    connection = amqp_connect(broker)
    consumer = kafka_consumer(broker, group, traffic.topic)
    try:
        deliveries = Deliveries(connection, connection.channel(), queue, prefetch=HELD)
        deliveries.pump_until(HELD)
        consume(consumer, TOPIC_RECORDS)
        commit(consumer, traffic.topic, 1)
        yield LiveClients(queue, group)
    finally:
        consumer.close()
        connection.close()


def stable_values(expo) -> dict:
    """Queue and topic figures, which do not move between two scrapes of an idle broker."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for s in expo.samples if s.name.startswith(("rabbitmq_queue_", "kafka_topic_"))}


def assert_promtool_clean(text: str, what: str):
    result = promtool_check(text)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), (
        f"promtool check metrics on {what} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


def assert_histogram(expo, name: str, **labels):
    """A Prometheus histogram: TYPE histogram, cumulative `_bucket`s ending in le="+Inf" equal
    to `_count`, and a `_sum`. Returns its count."""
    assert expo.types.get(name) == "histogram", f"{name}: TYPE {expo.types.get(name)}"
    buckets = expo.series(f"{name}_bucket", **labels)
    assert buckets, f"no {name}_bucket{labels}"
    assert buckets[-1].labels["le"] == "+Inf", buckets[-1]
    counts = [b.value for b in buckets]
    assert counts == sorted(counts), f"{name} buckets are not cumulative: {counts}"
    count = expo.value(f"{name}_count", **labels)
    assert count == counts[-1], f"{name}_count {count} != +Inf bucket {counts[-1]}"
    assert expo.value(f"{name}_sum", **labels) is not None, f"no {name}_sum{labels}"
    return count


@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_promtool_finds_no_problems(broker, traffic, live_clients, path):
    expo = scrape(broker.http_url, path)
    assert expo.series("kafka_consumergroup_members", consumergroup=live_clients.group)
    assert_promtool_clean(expo.text, path)


@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_metrics_need_no_credentials_and_use_prometheus_text(broker, path):
    expo = scrape(broker.http_url, path)  # no Authorization header
    assert expo.content_type.startswith(PROMETHEUS_CONTENT_TYPE), expo.content_type
    assert [s.value for s in expo.series("rabbitmq_build_info", product="ferrymq")] == [1]


def test_per_object_queue_figures_follow_pika(broker, traffic):
    expo = scrape(broker.http_url, "/metrics/per-object")
    for name, (published, consumed) in traffic.queues.items():
        labels = {"vhost": "/", "queue": name}
        assert expo.value("rabbitmq_queue_messages_ready", **labels) == published - consumed, name
        assert expo.value("rabbitmq_queue_messages_unacked", **labels) == 0, name
        assert expo.value("rabbitmq_queue_messages_published_total", **labels) == published, name
        assert expo.value("rabbitmq_queue_messages_delivered_total", **labels) == consumed, name
        assert expo.value("rabbitmq_queue_messages_acked_total", **labels) == consumed, name
    other = {"vhost": traffic.other_vhost, "queue": traffic.other_queue}
    assert expo.value("rabbitmq_queue_messages_ready", **other) == OTHER_VHOST_MESSAGES


def test_unacked_and_consumers_of_a_live_consumer(broker, live_clients):
    expo = scrape(broker.http_url, "/metrics/per-object")
    labels = {"vhost": "/", "queue": live_clients.queue}
    assert expo.value("rabbitmq_queue_messages_unacked", **labels) == HELD
    assert expo.value("rabbitmq_queue_messages_ready", **labels) == 2
    assert expo.value("rabbitmq_queue_messages", **labels) == HELD + 2
    assert expo.value("rabbitmq_queue_consumers", **labels) == 1
    assert expo.value("kafka_consumergroup_members", consumergroup=live_clients.group) == 1
    assert expo.value("rabbitmq_connections") >= 2  # the pika connection and the Kafka client
    assert expo.value("rabbitmq_channels") >= 1


def test_published_total_grows_with_publishes(broker, traffic):
    queue = unique("metrics-growing")
    labels = {"vhost": "/", "queue": queue}
    published = lambda expo, **kw: expo.value("rabbitmq_queue_messages_published_total", **kw)
    publish_confirmed(broker, queue, 1)
    before_queue = published(scrape(broker.http_url, "/metrics/per-object"), **labels)
    before_all = published(scrape(broker.http_url))
    publish_confirmed(broker, queue, 3, declare=False)
    assert published(scrape(broker.http_url, "/metrics/per-object"), **labels) == before_queue + 3 == 4
    assert published(scrape(broker.http_url)) == before_all + 3


def test_aggregated_metrics_sum_every_queue_and_each_vhost(broker, traffic):
    aggregated = scrape(broker.http_url)
    per_object = scrape(broker.http_url, "/metrics/per-object")
    for family in QUEUE_FAMILIES:
        series = aggregated.series(family)
        assert [s.labels for s in series] == [{}], (family, series)
        assert series[0].value == sum(s.value for s in per_object.series(family)), family
        per_vhost = family.replace("rabbitmq_queue_", "ferrymq_vhost_", 1)
        for vhost in ("/", traffic.other_vhost):
            summed = sum(s.value for s in per_object.series(family, vhost=vhost))
            assert aggregated.value(per_vhost, vhost=vhost) == summed, (per_vhost, vhost)
            assert per_object.value(per_vhost, vhost=vhost) == summed, (per_vhost, vhost)
    assert aggregated.value("ferrymq_vhost_messages_ready", vhost=traffic.other_vhost) == OTHER_VHOST_MESSAGES
    assert aggregated.value("rabbitmq_queues") == len(per_object.series("rabbitmq_queue_messages_ready"))


def test_kafka_topic_offsets_equal_records_produced(broker, traffic):
    expo = scrape(broker.http_url)
    partition = {"topic": traffic.topic, "partition": "0"}
    assert expo.value("kafka_topic_partition_current_offset", **partition) == TOPIC_RECORDS
    assert expo.value("kafka_topic_partition_oldest_offset", **partition) == 0
    assert expo.value("kafka_topic_partitions", topic=traffic.topic) == 1
    group = {"consumergroup": traffic.group, **partition}
    assert expo.value("kafka_consumergroup_current_offset", **group) == TOPIC_RECORDS
    assert expo.value("kafka_consumergroup_lag", **group) == 0


def test_consumergroup_lag_follows_commits(broker, traffic):
    group = unique("metrics-lag")
    labels = {"consumergroup": group, "topic": traffic.topic, "partition": "0"}
    lag = lambda: scrape(broker.http_url).value("kafka_consumergroup_lag", **labels)
    consumer = kafka_consumer(broker, group, traffic.topic)
    try:
        consume(consumer, TOPIC_RECORDS)
        for committed in (4, TOPIC_RECORDS):
            commit(consumer, traffic.topic, committed)
            wait_until(lambda: lag() == TOPIC_RECORDS - committed, timeout=10,
                       message=lambda: f"kafka_consumergroup_lag{labels} is {lag()}, "
                                       f"want {TOPIC_RECORDS - committed}")
    finally:
        consumer.close()


def test_kafka_request_metrics(broker, traffic):
    expo = scrape(broker.http_url)
    assert expo.types.get("kafka_network_requestmetrics_requests_total") == "counter"
    produced = expo.value("kafka_network_requestmetrics_requests_total", request="Produce")
    assert produced is not None and produced > 0, produced
    assert assert_histogram(expo, "kafka_network_requestmetrics_totaltime_seconds", request="Produce") > 0


def test_fsync_histogram_and_process_memory(broker, traffic):
    expo = scrape(broker.http_url)
    # Persistent messages on durable queues with storage.fsync = "always" were fsynced.
    assert assert_histogram(expo, "ferrymq_log_fsync_duration_seconds") > 0
    rss = expo.value("rabbitmq_process_resident_memory_bytes")
    assert rss is not None and rss > 0, rss


def test_metrics_listener_serves_the_same_pages(make_broker):
    b = make_broker(env={**FAST_GROUPS, "FERRYMQ_METRICS_ENABLED": "true",
                         "FERRYMQ_METRICS_LISTEN": "127.0.0.1:0"})
    address = b.wait_for_log(r"ferrymq ready .* metrics=\S+").rsplit("metrics=", 1)[1].strip()
    metrics_url = f"http://{address}"
    queue, topic = unique("listener-q"), unique("listener-topic")
    publish_confirmed(b, queue, 2)
    produce(b, topic, 3)
    for path in ("/metrics", "/metrics/per-object"):
        main, separate = scrape(b.http_url, path), scrape(metrics_url, path)
        assert separate.content_type.startswith(PROMETHEUS_CONTENT_TYPE), separate.content_type
        assert separate.types == main.types, path
        assert separate.keys() == main.keys(), path
        assert stable_values(separate) == stable_values(main), path
        assert_promtool_clean(separate.text, f"{metrics_url}{path}")
    assert scrape(metrics_url, "/metrics/per-object").value(
        "rabbitmq_queue_messages_ready", vhost="/", queue=queue) == 2
    # Only metrics there: the management API stays on the HTTP listener.
    assert Api(metrics_url).get("/api/overview").status_code == 404


def test_per_object_setting_labels_metrics_by_queue(make_broker):
    b = make_broker(env={"FERRYMQ_HTTP_PER_OBJECT_METRICS": "true"})
    queue = unique("per-object-q")
    publish_confirmed(b, queue, 2)
    expo = scrape(b.http_url)
    assert expo.value("rabbitmq_queue_messages_ready", vhost="/", queue=queue) == 2
    assert stable_values(expo) == stable_values(scrape(b.http_url, "/metrics/per-object"))
