"""The container image, run as users run it: built with nothing pulled, stock clients on the
host through published ports, clients in another container reaching it by service name over
AMQP and Kafka (the in-network Kafka listener), a restart keeping durable queues, persistent
messages, topics and committed offsets, `docker stop` draining and exiting 0, the health
check, docker/compose.yaml brought up with the Compose tool, and the Testcontainers snippet
of docs/deploy.md."""

import re
import shutil
import subprocess
import sys
import time
import uuid

import pika
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import ROOT
from docker_util import docker, dock, engine, ferrymq_image, free_port  # noqa: F401 (fixtures)

READY = "ferrymq ready"


def published(dock, volume=None, network=None, env=()):
    """A ferrymq container with its AMQP, Kafka and HTTP ports published on loopback; the
    PLAINTEXT Kafka listener advertises the published port."""
    ports = {"amqp": free_port(), "kafka": free_port(), "http": free_port()}
    args = [
        "-p", f"127.0.0.1:{ports['amqp']}:5672", "-p", f"127.0.0.1:{ports['kafka']}:9092",
        "-p", f"127.0.0.1:{ports['http']}:15672",
        "-e", f'FERRYMQ_KAFKA_ADVERTISED_LISTENERS=["PLAINTEXT://127.0.0.1:{ports["kafka"]}","DOCKER://ferrymq:29092"]',
        "-v", f"{volume or dock.volume()}:/var/lib/ferrymq",
    ]
    if network:
        args += ["--network", network, "--network-alias", "ferrymq"]
    for e in env:
        args += ["-e", e]
    name = dock.run(*args, ferrymq_image())
    dock.wait_for_log(name, READY)
    return name, ports


def amqp(ports):
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", ports["amqp"], connection_attempts=5, retry_delay=0.2))


def kafka_conf(ports):
    return {"bootstrap.servers": f"127.0.0.1:{ports['kafka']}"}


def test_the_image_is_small_and_runs_as_an_unprivileged_user(dock):
    image = ferrymq_image()
    config = docker("image", "inspect", "--format", "{{json .Config}}", image).stdout
    assert '"User":"10001:10001"' in config
    assert '"StopSignal":"SIGTERM"' in config
    assert '"/var/lib/ferrymq":{}' in config
    assert "ferrymq\",\"health" in config.replace(" ", "")
    # No shell or package manager: only ferrymq and the libraries it links.
    name = dock.run(image, "--print-config")
    assert docker("wait", name).stdout.strip() == "0"
    assert "[amqp]" in dock.logs(name)


def test_host_clients_restart_and_a_graceful_stop(dock):
    volume = dock.volume()
    name, ports = published(dock, volume=volume)
    queue, topic, group = f"q-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}", "g-docker"
    with amqp(ports) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, durable=True)
        for i in range(100):
            ch.basic_publish("", queue, f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
    producer = Producer(kafka_conf(ports))
    for i in range(50):
        producer.produce(topic, f"r{i}".encode())
    assert producer.flush(20) == 0
    consumer = Consumer({**kafka_conf(ports), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = []
    while len(got) < 20:
        msg = consumer.poll(1)
        if msg is not None and not msg.error():
            got.append(msg)
    consumer.commit(message=got[-1], asynchronous=False)
    consumer.close()

    # docker stop: SIGTERM, the broker drains and exits 0 well within the grace period.
    started = time.monotonic()
    docker("stop", "-t", "20", name, timeout=60)
    assert time.monotonic() - started < 15
    state = dock.state(name)
    assert state["ExitCode"] == 0, dock.logs(name)[-2000:]
    assert "ferrymq stopped" in dock.logs(name)

    docker("start", name)
    deadline = time.monotonic() + 30
    while dock.logs(name).count(READY) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    with amqp(ports) as conn:
        ch = conn.channel()
        assert ch.queue_declare(queue, durable=True, passive=True).method.message_count == 100
        assert ch.basic_get(queue, auto_ack=True)[2] == b"m0"
    consumer = Consumer({**kafka_conf(ports), "group.id": group, "enable.auto.commit": False})
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == got[-1].offset() + 1
    consumer.close()


def test_clients_in_another_container_reach_it_by_service_name(dock):
    network = dock.network()
    published(dock, network=network)
    topic = f"net-{uuid.uuid4().hex[:6]}"
    metadata = dock.client(network, "kcat", "-b", "ferrymq:29092", "-L")
    assert metadata.returncode == 0, metadata.stderr
    assert "broker 0 at ferrymq:29092" in metadata.stdout
    produced = dock.client(network, "kcat", "-b", "ferrymq:29092", "-P", "-t", topic, input="one\ntwo\n")
    assert produced.returncode == 0, produced.stderr
    consumed = dock.client(network, "kcat", "-b", "ferrymq:29092", "-C", "-t", topic, "-o", "beginning", "-c", "2", "-e")
    assert consumed.stdout.split() == ["one", "two"], consumed.stderr
    url = "amqp://guest:guest@ferrymq:5672"
    declared = dock.client(network, "amqp-declare-queue", "--url", url, "-q", "net-q", "-d")
    assert declared.returncode == 0, declared.stderr
    sent = dock.client(network, "amqp-publish", "--url", url, "-r", "net-q", "-b", "hello from a container")
    assert sent.returncode == 0, sent.stderr
    got = dock.client(network, "amqp-get", "--url", url, "-q", "net-q")
    assert got.stdout == "hello from a container", got.stderr


def test_the_health_check_turns_healthy(dock):
    name, _ = published(dock)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        health = dock.state(name).get("Health", {})
        if health.get("Status") == "healthy":
            break
        time.sleep(0.2)
    assert health.get("Status") == "healthy", health


def compose_tool():
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither `docker compose` nor docker-compose is installed (make test installs docker-compose)")


def test_compose_brings_it_up_with_host_clients(dock):
    project = f"fmq{uuid.uuid4().hex[:6]}"
    env_ports = {"FMQ_IMAGE": ferrymq_image(), "FMQ_AMQP_PORT": str(free_port()),
                 "FMQ_KAFKA_PORT": str(free_port()), "FMQ_HTTP_PORT": str(free_port())}
    import os
    env = {**os.environ, **env_ports}
    compose = [*compose_tool(), "-p", project, "-f", str(ROOT / "docker" / "compose.yaml")]
    try:
        up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        name = f"{project}_ferrymq_1" if compose[0] == "docker-compose" else f"{project}-ferrymq-1"
        dock.wait_for_log(name, READY)
        ports = {"amqp": int(env_ports["FMQ_AMQP_PORT"]), "kafka": int(env_ports["FMQ_KAFKA_PORT"])}
        with amqp(ports) as conn:
            conn.channel().queue_declare("compose-q", durable=True)
        assert Producer(kafka_conf(ports)).list_topics(timeout=10).brokers[0].port == ports["kafka"]
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, capture_output=True, timeout=120)


def test_the_testcontainers_snippet_of_the_deploy_docs_runs():
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"```python\n(.*?)```", text[text.index("## Testcontainers"):], re.S).group(1)
    code = block.replace('"ferrymq:latest"', f'"{ferrymq_image()}"')
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-2:] == ["amqp ok", "kafka ok"], run.stdout
