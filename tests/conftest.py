"""Shared fixtures: start the real `ferrymq` binary on free loopback ports with a temp data dir.

The binary is `$TEST_FERRYMQ_BIN` (the Makefile points it at the freshly built one). Every wait is
bounded; readiness is the `ferrymq ready ...` line the binary logs once every listener is bound.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"ferrymq ready amqp=(\S+) kafka=(\S+) http=(\S+)")
START_TIMEOUT = 30.0


def _binary() -> str:
    path = os.environ.get("TEST_FERRYMQ_BIN") or str(ROOT / "target" / "debug" / "ferrymq")
    if not os.path.exists(path):
        pytest.exit(f"ferrymq binary not found at {path}; run `make test`", returncode=2)
    return path


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class Broker:
    """One ferrymq process. `restart()` keeps the data dir and the same ports."""

    def __init__(self, data_dir: Path, args=(), env=None):
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = dict(env or {})
        self.proc = None
        self.output: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.amqp = self.kafka = self.http = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> "Broker":
        listen = lambda cur: f"127.0.0.1:{cur[1]}" if cur else "127.0.0.1:0"
        cmd = [
            _binary(),
            "--data-dir", str(self.data_dir),
            "--amqp-listen", listen(self.amqp),
            "--kafka-listen", listen(self.kafka),
            "--http-listen", listen(self.http),
            "--log-level", os.environ.get("TEST_FERRYMQ_LOG", "info"),
            *self.args,
        ]
        env = {**os.environ, **self.env}
        self._ready.clear()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
            errors="replace",
        )
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"ferrymq not ready within {timeout}s:\n{self.log_tail()}")
        return self

    def _drain(self, proc):
        for line in proc.stdout:
            with self._lock:
                self.output.append(line.rstrip("\n"))
            match = READY.search(line)
            if match and not self._ready.is_set():
                self.amqp, self.kafka, self.http = (_split(a) for a in match.groups())
                self._ready.set()

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the broker and wait for it to exit; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError(f"ferrymq did not exit within {timeout}s after {sig!r}")

    def kill(self):
        """SIGKILL: the crash every durability promise is tested against."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = START_TIMEOUT, crash: bool = False) -> "Broker":
        if crash:
            self.kill()
        else:
            code = self.stop()
            assert code == 0, f"ferrymq exited {code} on SIGTERM:\n{self.log_tail()}"
        return self.start(timeout)

    # -- addresses ---------------------------------------------------------------------------
    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp[1]}/%2F"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka[1]}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http[1]}"

    def log_tail(self, lines: int = 80) -> str:
        with self._lock:
            return "\n".join(self.output[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """Waits (bounded) until a log line matches `pattern`; returns the line."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                new = self.output[seen:]
                seen = len(self.output)
            for line in new:
                if regex.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r} in {timeout}s:\n{self.log_tail()}")


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Polls `predicate` (bounded) until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout}s")


def api_get(broker, path):
    """GET `path` of the management API as guest: (status, decoded JSON body), errors too."""
    request = urllib.request.Request(broker.http_url + path)
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def get_all(ch, queue):
    """Every message of `queue`, taken with basic.get and auto-ack: (method, properties, body)."""
    got = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((method, props, body))


def _report(broker: Broker, request):
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n--- ferrymq log ({broker.data_dir}) ---\n{broker.log_tail(200)}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def broker(tmp_path, request):
    """A fresh ferrymq per test (it starts in milliseconds)."""
    b = Broker(tmp_path / "data").start()
    yield b
    _report(b, request)
    code = b.stop()
    assert code == 0, f"ferrymq exited {code} on SIGTERM:\n{b.log_tail()}"


@pytest.fixture
def make_broker(tmp_path, request):
    """Factory for tests that need custom flags/env or several brokers."""
    made = []

    def make(args=(), env=None, name="data", start=True):
        b = Broker(tmp_path / name, args=args, env=env)
        made.append(b)
        return b.start() if start else b

    yield make
    for b in made:
        _report(b, request)
        b.kill()


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory):
    """One ferrymq for a whole module, for tests that only add their own uniquely named objects."""
    b = Broker(tmp_path_factory.mktemp("shared") / "data").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def rabbitmq():
    """A real RabbitMQ (Debian's rabbitmq-server) for differential tests: the same client
    script runs against it and against ferrymq, and the two must agree."""
    from peers import RabbitMQ, rabbitmq_available

    if not rabbitmq_available():
        pytest.skip("rabbitmq-server is not installed (make test installs it)")
    peer = RabbitMQ().start()
    yield peer
    peer.stop()
