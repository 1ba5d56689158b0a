"""A minimal AMQP client over a raw socket, for tests that must send what no well-behaved
client library sends (bad headers, oversized or misordered frames, silent peers).
Frames are encoded and decoded with pika's frame module."""

import socket
import struct
import time

import pika
from pika import frame, spec


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    @classmethod
    def from_url(cls, url: str, **kw) -> "RawClient":
        p = pika.URLParameters(url)
        return cls(p.host, p.port, **kw)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_method(self, channel: int, method):
        self.send(frame.Method(channel, method).marshal())

    def send_frame(self, kind: int, channel: int, payload: bytes, end: int = 0xCE):
        self.send(struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end]))

    def recv_frame(self, timeout: float = 5.0):
        """The next frame, or None on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if self.buf:
                consumed, f = frame.decode_frame(self.buf)
                if f is not None:
                    self.buf = self.buf[consumed:]
                    return f
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buf += data

    def expect(self, method_type, timeout: float = 5.0):
        """Reads frames until a method of `method_type` (skipping heartbeats)."""
        while True:
            f = self.recv_frame(timeout)
            assert f is not None, f"connection closed while waiting for {method_type.NAME}"
            if isinstance(f, frame.Heartbeat):
                continue
            if isinstance(f, frame.Method) and isinstance(f.method, method_type):
                return f
            raise AssertionError(f"expected {method_type.NAME}, got {f}")

    def handshake(self, heartbeat=0, frame_max=131072, channel_max=2047, vhost="/"):
        self.send(b"AMQP\x00\x00\x09\x01")
        self.expect(spec.Connection.Start)
        self.send_method(
            0,
            spec.Connection.StartOk(
                client_properties={"capabilities": {"authentication_failure_close": True}},
                mechanism="PLAIN",
                response=b"\0guest\0guest",
            ),
        )
        tune = self.expect(spec.Connection.Tune).method
        self.send_method(0, spec.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat))
        self.send_method(0, spec.Connection.Open(virtual_host=vhost))
        self.expect(spec.Connection.OpenOk)
        return tune

    def open_channel(self, channel: int = 1):
        self.send_method(channel, spec.Channel.Open())
        self.expect(spec.Channel.OpenOk)

    def closed_with(self, timeout: float = 5.0):
        """Waits for connection.close or channel.close; returns (kind, code, text)."""
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                return ("eof", None, None)
            if isinstance(f, frame.Method) and isinstance(f.method, (spec.Connection.Close, spec.Channel.Close)):
                kind = "connection" if isinstance(f.method, spec.Connection.Close) else "channel"
                return (kind, f.method.reply_code, f.method.reply_text)

    def eof(self, timeout: float = 5.0) -> bool:
        """True if the server closes the socket within `timeout` (other frames skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.recv_frame(max(0.01, deadline - time.monotonic())) is None:
                    return True
            except TimeoutError:
                return False
            except OSError:
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
