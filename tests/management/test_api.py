"""The management API against ferrymq alone: what it changes reaches the AMQP side, survives a
restart, and refuses what it must. (tests/management/test_differential.py pins the same
endpoints to RabbitMQ's answers.)"""

import json
import uuid

import pika
import pytest

from mgmt import Api, ferrymq_api, seg


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def amqp_url(broker, user="guest", password="guest", vhost="/") -> str:
    return f"amqp://{user}:{password}@127.0.0.1:{broker.amqp[1]}/{seg(vhost)}"


def test_a_user_and_vhost_created_over_http_log_in_over_amqp_and_survive_a_restart(broker):
    api = ferrymq_api(broker)
    vhost, user = unique("vh"), unique("app")
    assert api.put(f"/api/vhosts/{seg(vhost)}", {"description": "made over http"}).status_code == 201
    assert api.put(f"/api/users/{user}", {"password": "s3cret", "tags": "management"}).status_code == 201
    perms = {"configure": ".*", "write": ".*", "read": ".*"}
    assert api.put(f"/api/permissions/{seg(vhost)}/{user}", perms).status_code == 201

    conn = pika.BlockingConnection(pika.URLParameters(amqp_url(broker, user, "s3cret", vhost)))
    ch = conn.channel()
    ch.queue_declare("in-new-vhost", durable=True)
    conn.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(amqp_url(broker, user, "wrong", vhost)))

    broker.restart()
    api = ferrymq_api(broker)
    assert api.json(f"/api/vhosts/{seg(vhost)}")["description"] == "made over http"
    stored = api.json(f"/api/users/{user}")
    assert stored["tags"] == ["management"]
    assert stored["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert "s3cret" not in json.dumps(stored)
    assert api.json(f"/api/queues/{seg(vhost)}/in-new-vhost")["durable"] is True
    # The user's own view: management users see their vhost only.
    mine = api.as_user(user, "s3cret").json("/api/vhosts")
    assert [v["name"] for v in mine] == [vhost]


def test_a_user_without_permission_on_a_vhost_cannot_open_it(broker):
    api = ferrymq_api(broker)
    user = unique("noperm")
    assert api.put(f"/api/users/{user}", {"password": "pw", "tags": ""}).status_code == 201
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError, match="530"):
        pika.BlockingConnection(pika.URLParameters(amqp_url(broker, user, "pw")))
    assert api.put(f"/api/permissions/%2F/{user}", {"configure": "", "write": "", "read": ".*"}).status_code == 201
    pika.BlockingConnection(pika.URLParameters(amqp_url(broker, user, "pw"))).close()
    assert api.delete(f"/api/permissions/%2F/{user}").status_code == 204
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(pika.URLParameters(amqp_url(broker, user, "pw")))


def test_deleting_a_vhost_closes_its_connections_and_removes_its_objects(broker):
    api = ferrymq_api(broker)
    vhost = unique("doomed")
    assert api.put(f"/api/vhosts/{seg(vhost)}").status_code == 201
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url(broker, vhost=vhost)))
    ch = conn.channel()
    ch.queue_declare("q", durable=True)
    ch.basic_publish("", "q", b"x", pika.BasicProperties(delivery_mode=2))
    assert api.delete(f"/api/vhosts/{seg(vhost)}").status_code == 204
    with pytest.raises((pika.exceptions.ConnectionClosedByBroker, pika.exceptions.StreamLostError)):
        for _ in range(100):
            conn.process_data_events(time_limit=0.1)
    assert api.get(f"/api/vhosts/{seg(vhost)}").status_code == 404
    assert api.delete(f"/api/vhosts/{seg(vhost)}").status_code == 404
    # Recreated, it starts empty.
    assert api.put(f"/api/vhosts/{seg(vhost)}").status_code == 201
    assert api.get(f"/api/queues/{seg(vhost)}/q").status_code == 404
    broker.restart()
    assert ferrymq_api(broker).get(f"/api/queues/{seg(vhost)}/q").status_code == 404


def test_closing_a_connection_from_the_api_tells_the_client_why(broker):
    api = ferrymq_api(broker)
    params = pika.URLParameters(amqp_url(broker))
    params.client_properties = {"connection_name": "to-be-closed"}
    conn = pika.BlockingConnection(params)
    conn.channel()
    listed = api.wait_for("/api/connections", lambda cs: any(
        c.get("user_provided_name") == "to-be-closed" for c in cs))
    name = next(c["name"] for c in listed if c.get("user_provided_name") == "to-be-closed")
    assert api.delete(f"/api/connections/{seg(name)}", headers={"X-Reason": "maintenance"}).status_code == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(100):
            conn.process_data_events(time_limit=0.1)
    assert closed.value.reply_code == 320
    assert closed.value.reply_text == "CONNECTION_FORCED - maintenance"
    api.wait_for("/api/connections", lambda cs: all(c["name"] != name for c in cs))
    assert api.get(f"/api/connections/{seg(name)}").status_code == 404


def test_definitions_load_at_boot_before_the_first_client(make_broker, tmp_path):
    defs = {
        "users": [{"name": "ci", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}],
        "vhosts": [{"name": "ci-vhost"}],
        "permissions": [{"user": "ci", "vhost": "ci-vhost", "configure": ".*", "write": ".*", "read": ".*"}],
        "exchanges": [{"name": "events", "vhost": "ci-vhost", "type": "topic", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "queues": [{"name": "audit", "vhost": "ci-vhost", "durable": True, "auto_delete": False,
                    "arguments": {"x-max-length": 10}}],
        "bindings": [{"source": "events", "vhost": "ci-vhost", "destination": "audit",
                      "destination_type": "queue", "routing_key": "user.#", "arguments": {}}],
    }
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    broker = make_broker(env={"FERRYMQ_SERVER_LOAD_DEFINITIONS": str(path)})
    broker.wait_for_log("definitions loaded")
    # The file's user (RabbitMQ's documented hash of "test12") publishes through the binding.
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url(broker, "ci", "test12", "ci-vhost")))
    ch = conn.channel()
    ch.basic_publish("events", "user.created", b"hello")
    method, _, body = ch.basic_get("audit", auto_ack=True)
    assert body == b"hello"
    conn.close()
    api = Api(broker.http_url, "ci", "test12")
    assert api.json("/api/queues/ci-vhost/audit")["arguments"] == {"x-max-length": 10}


def test_a_broken_definitions_file_stops_the_broker_with_a_reason(make_broker, tmp_path):
    path = tmp_path / "defs.json"
    path.write_text(json.dumps({"queues": [{"name": "q", "vhost": "no-such-vhost"}]}))
    broker = make_broker(env={"FERRYMQ_SERVER_LOAD_DEFINITIONS": str(path)}, start=False)
    with pytest.raises(RuntimeError):
        broker.start(timeout=10)
    assert "no-such-vhost" in broker.log_tail()


def test_health_checks_and_aliveness(broker):
    api = ferrymq_api(broker)
    assert api.json("/api/health/checks/alarms") == {"status": "ok"}
    assert api.json("/api/health/checks/local-alarms") == {"status": "ok"}
    amqp_port = broker.amqp[1]
    assert api.json(f"/api/health/checks/port-listener/{amqp_port}")["status"] == "ok"
    missing = api.get("/api/health/checks/port-listener/1")
    assert missing.status_code == 503
    assert missing.json()["status"] == "failed"
    assert api.json("/api/health/checks/protocol-listener/amqp")["status"] == "ok"
    assert api.json("/api/health/checks/protocol-listener/kafka")["status"] == "ok"
    assert api.get("/api/health/checks/protocol-listener/mqtt").status_code == 503
    assert api.json("/api/health/checks/virtual-hosts") == {"status": "ok"}
    assert api.json("/api/aliveness-test/%2F") == {"status": "ok"}
    assert api.get("/api/aliveness-test/nope").status_code == 404


def test_credentials_and_tags_are_enforced(broker):
    api = ferrymq_api(broker)
    for name, tags in [("mon", "monitoring"), ("mgmt", "management"), ("plain", "")]:
        assert api.put(f"/api/users/{name}", {"password": name, "tags": tags}).status_code == 201
    no_auth = api.get("/api/overview", auth=False)
    assert no_auth.status_code == 401
    assert no_auth.headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    assert api.as_user("guest", "nope").get("/api/overview").status_code == 401
    assert api.as_user("plain", "plain").get("/api/whoami").status_code == 403
    mon = api.as_user("mon", "mon")
    assert mon.get("/api/nodes").status_code == 200
    refused = mon.put("/api/vhosts/x")
    assert refused.status_code == 403
    assert refused.json() == {"error": "not_authorised", "reason": "Not administrator user"}
    mgmt = api.as_user("mgmt", "mgmt")
    assert mgmt.get("/api/users").status_code == 403
    assert mgmt.get("/api/nodes").status_code == 403
    # Without a permission on "/", a management user sees nothing there.
    assert mgmt.get("/api/queues/%2F").status_code == 403
    assert mgmt.json("/api/queues") == []


def test_bad_requests_get_rabbitmqs_errors(broker):
    api = ferrymq_api(broker)
    bad = api.request("PUT", "/api/queues/%2F/q", data=b"{not json", headers={"content-type": "application/json"})
    assert (bad.status_code, bad.json()) == (400, {"error": "bad_request", "reason": "not_json"})
    assert api.put("/api/queues/nope/q", {}).status_code == 404
    assert api.get("/api/queues/%2F/nope").json() == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.request("PATCH", "/api/queues/%2F/q").status_code == 405
    assert api.get("/api/nosuch").status_code == 404
    arg = api.put("/api/queues/%2F/badarg", {"arguments": {"x-max-length": "ten"}})
    assert arg.status_code == 400
    assert "x-max-length" in arg.json()["reason"]


def test_the_kafka_view_and_the_stream_queue_view_agree(broker):
    from confluent_kafka import Producer

    api = ferrymq_api(broker)
    topic = unique("events")
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(7):
        producer.produce(topic, key=str(i % 3).encode(), value=b"v")
    assert producer.flush(15) == 0
    t = api.json(f"/api/kafka/topics/{topic}")
    assert sum(p["log_end_offset"] for p in t["partition_details"]) == 7
    assert t["configs"]["cleanup.policy"] == "delete"
    q = api.json(f"/api/queues/%2F/{topic}")
    assert (q["type"], q["messages"]) == ("stream", 7)
    assert api.get("/api/kafka/topics/nope").status_code == 404
    assert api.get("/api/kafka/groups/nope").status_code == 404
