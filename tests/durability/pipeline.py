"""A pipelined AMQP publisher and consumer over a raw socket, for tests that move hundreds of
thousands of messages: pika's BlockingConnection waits for each confirm, so it cannot fill a
backlog quickly. Methods are encoded with pika's spec module; frames are parsed here with
`struct` (only what these tests need: deliveries, confirms, their content)."""

import socket
import struct
import threading

import pika
from pika import spec

FRAME_END = b"\xce"


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + FRAME_END


def _method(channel: int, method) -> bytes:
    payload = struct.pack(">I", method.INDEX) + b"".join(method.encode())
    return _frame(1, channel, payload)


class Connection:
    def __init__(self, url: str, timeout: float = 30.0):
        p = pika.URLParameters(url)
        self.sock = socket.create_connection((p.host, p.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.send(b"AMQP\x00\x00\x09\x01")
        self.expect_method(10, 10)
        start_ok = spec.Connection.StartOk(
            client_properties={"product": "durability-test"}, mechanism="PLAIN",
            response="\0guest\0guest", locale="en_US")
        self.send(_method(0, start_ok))
        self.expect_method(10, 30)
        self.send(_method(0, spec.Connection.TuneOk(channel_max=16, frame_max=131072, heartbeat=0)))
        self.send(_method(0, spec.Connection.Open(virtual_host="/")))
        self.expect_method(10, 41)
        self.send(_method(1, spec.Channel.Open()))
        self.expect_method(20, 11)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def frame(self):
        """(type, channel, payload) of the next frame."""
        while True:
            if len(self.buf) >= 7:
                kind, channel, size = struct.unpack_from(">BHI", self.buf)
                if len(self.buf) >= 8 + size:
                    payload = bytes(self.buf[7:7 + size])
                    del self.buf[:8 + size]
                    return kind, channel, payload
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("broker closed the connection")
            self.buf += data

    def expect_method(self, class_id: int, method_id: int) -> bytes:
        while True:
            kind, _, payload = self.frame()
            if kind == 1:
                ids = struct.unpack_from(">HH", payload)
                if ids == (class_id, method_id):
                    return payload
                if ids in ((10, 50), (20, 40)):
                    raise ConnectionError(f"closed by the broker: {payload!r}")

    def call(self, method, reply_ids):
        self.send(_method(1, method))
        return self.expect_method(*reply_ids)

    def close(self):
        try:
            self.send(_method(0, spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)))
        finally:
            self.sock.close()


def body_of(index: int, size: int) -> bytes:
    head = b"%012d" % index
    return head + b"." * (size - len(head))


def publish(url: str, queue: str, count: int, size: int, batch: int = 500,
            persistent: bool = True) -> int:
    """Publishes `count` messages of `size` bytes (persistent unless told; the body starts
    with the 12-digit index) to `queue` through the default exchange, pipelined with confirms;
    returns the highest confirmed delivery tag once all are confirmed."""
    conn = Connection(url)
    conn.call(spec.Confirm.Select(), (85, 11))
    publish_frame = _method(1, spec.Basic.Publish(exchange="", routing_key=queue))
    props = spec.BasicProperties(delivery_mode=2 if persistent else 1)
    header = _frame(2, 1, struct.pack(">HHQ", 60, 0, size) + b"".join(props.encode()))
    confirmed = [0]
    failed = []

    def read_confirms():
        try:
            while confirmed[0] < count:
                kind, _, payload = conn.frame()
                if kind != 1:
                    continue
                class_id, method_id = struct.unpack_from(">HH", payload)
                if (class_id, method_id) == (60, 80):
                    tag, = struct.unpack_from(">Q", payload, 4)
                    confirmed[0] = max(confirmed[0], tag)
                elif (class_id, method_id) == (60, 120):
                    failed.append(payload)
                    return
        except Exception as e:  # noqa: BLE001 - reported by the caller
            failed.append(e)

    reader = threading.Thread(target=read_confirms, daemon=True)
    reader.start()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        chunk = b"".join(publish_frame + header + _frame(3, 1, body_of(sent + i, size))
                         for i in range(n))
        conn.send(chunk)
        sent += n
        # Bound what is unconfirmed, as a publisher with a confirm window does.
        while sent - confirmed[0] > 20_000 and reader.is_alive():
            reader.join(0.01)
    reader.join(300)
    conn.close()
    assert not failed, f"publishing failed: {failed[:1]}"
    return confirmed[0]


def consume(url: str, queue: str, count: int, on_message=None, prefetch: int = 2000):
    """Consumes `count` messages with manual acks (multiple, every 500); calls
    `on_message(body, redelivered)` for each."""
    conn = Connection(url)
    conn.call(spec.Basic.Qos(prefetch_count=prefetch), (60, 11))
    conn.call(spec.Basic.Consume(queue=queue, consumer_tag="drain"), (60, 21))
    got = 0
    pending_tag = None
    body = bytearray()
    remaining = 0
    redelivered = False
    while got < count:
        kind, _, payload = conn.frame()
        if kind == 1:
            class_id, method_id = struct.unpack_from(">HH", payload)
            if (class_id, method_id) != (60, 60):
                continue
            at = 4
            tag_len = payload[at]
            at += 1 + tag_len
            pending_tag, = struct.unpack_from(">Q", payload, at)
            redelivered = bool(payload[at + 8] & 1)
        elif kind == 2:
            remaining, = struct.unpack_from(">Q", payload, 4)
            body = bytearray()
            if remaining == 0:
                got += 1
                if on_message:
                    on_message(bytes(body), redelivered)
        elif kind == 3:
            body += payload
            remaining -= len(payload)
            if remaining == 0:
                got += 1
                if on_message:
                    on_message(bytes(body), redelivered)
                if got % 500 == 0 or got == count:
                    conn.send(_method(1, spec.Basic.Ack(delivery_tag=pending_tag, multiple=True)))
    conn.close()
    return got
