"""Records the bytes a real client (pika) exchanges with a real RabbitMQ, for the codec's
golden tests (crates/amqp/tests/fixtures/). Run by hand when the fixtures need refreshing:

    .venv/bin/python tests/amqp/record_golden.py crates/amqp/tests/fixtures

It starts a private rabbitmq-server (tests/peers.py), puts a recording TCP proxy in front
of it, and drives pika through a session that uses every property and field type.
"""

import datetime
import decimal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pika  # noqa: E402
from peers import RabbitMQ  # noqa: E402


def proxy(listen: socket.socket, target: int, c2s: bytearray, s2c: bytearray):
    client, _ = listen.accept()
    server = socket.create_connection(("127.0.0.1", target))

    def pump(src, dst, log):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            log.extend(data)
            dst.sendall(data)

    threads = [
        threading.Thread(target=pump, args=(client, server, c2s)),
        threading.Thread(target=pump, args=(server, client, s2c)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def session(port: int):
    params = pika.ConnectionParameters("127.0.0.1", port, frame_max=4096)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("golden", arguments={"x-max-priority": 10, "x-message-ttl": 60000})
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={
            "str": "text",
            "int": 42,
            "big": 2**40,
            "neg": -7,
            "bool": True,
            "none": None,
            "bytes": b"\x00\xff",
            "list": [1, "two", [3]],
            "dict": {"nested": {"deep": 1}},
            "dec": decimal.Decimal("3.14"),
            "ts": datetime.datetime(2024, 1, 2, 3, 4, 5),
        },
        delivery_mode=2,
        priority=5,
        correlation_id="corr-1",
        reply_to="replies",
        expiration="60000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="golden.type",
        user_id="guest",
        app_id="recorder",
        cluster_id="cluster-x",
    )
    ch.basic_publish("", "golden", b"x" * 10000, props)
    method, got_props, body = ch.basic_get("golden", auto_ack=False)
    assert body == b"x" * 10000
    ch.basic_ack(method.delivery_tag)
    ch.queue_delete("golden")
    conn.close()


def main(out_dir: str):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rabbit = RabbitMQ().start()
    try:
        listen = socket.socket()
        listen.bind(("127.0.0.1", 0))
        listen.listen(1)
        c2s, s2c = bytearray(), bytearray()
        t = threading.Thread(
            target=proxy, args=(listen, rabbit.port, c2s, s2c), daemon=True
        )
        t.start()
        session(listen.getsockname()[1])
        t.join(10)
        (out / "pika_session.client.bin").write_bytes(bytes(c2s))
        (out / "pika_session.server.bin").write_bytes(bytes(s2c))
        print(f"recorded {len(c2s)} client bytes, {len(s2c)} server bytes")
    finally:
        rabbit.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/amqp/tests/fixtures")
