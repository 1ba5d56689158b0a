"""Real peer brokers run beside ferrymq: Debian's rabbitmq-server for differential tests and
benchmarks. Each instance gets its own node name, ports, home and data dir, on loopback only."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rabbitmq_available() -> bool:
    return os.path.exists(RABBITMQ_SERVER) and shutil.which("erl") is not None


class RabbitMQ:
    """A private rabbitmq-server node. `start()` waits until AMQP accepts a login.

    No plugins by default. With `management=True` the rabbitmq_management plugin is enabled on a
    free loopback port (`http_url`, `http_port`) and `start()` also waits until GET /api/overview
    answers 200 to guest:guest (guest may log in from loopback only, which this is).
    `stats_interval_ms` sets `collect_statistics_interval` (RabbitMQ's default: 5000 ms), how
    often the management plugin refreshes message counts and rates."""

    def __init__(self, base: Path | None = None, management: bool = False,
                 stats_interval_ms: int | None = None, prometheus: bool = False):
        self.base = Path(base or tempfile.mkdtemp(prefix="rabbitmq-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.management = management
        self.stats_interval_ms = stats_interval_ms
        self.http_port = free_port() if management else None
        # rabbitmq_prometheus serves /metrics on its own port (15692 by default).
        self.prometheus = prometheus
        self.prometheus_port = free_port() if prometheus else None
        self.proc = None

    @property
    def http_url(self) -> str:
        """The management API's base URL, e.g. http://127.0.0.1:15672 (no trailing slash)."""
        if not self.management:
            raise AttributeError("this RabbitMQ was started without management=True")
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout: float = 60.0) -> "RabbitMQ":
        if self.management:
            plugins = ["rabbitmq_management"] + (["rabbitmq_prometheus"] if self.prometheus else [])
            (self.base / "plugins").write_text(f"[{','.join(plugins)}].\n")
            # RABBITMQ_CONFIG_FILE below names "rabbitmq" without an extension, which RabbitMQ
            # (3.9+) reads as the new-style (sysctl-like) file rabbitmq.conf.
            conf = ["management.tcp.ip = 127.0.0.1", f"management.tcp.port = {self.http_port}"]
            if self.prometheus:
                conf += ["prometheus.tcp.ip = 127.0.0.1",
                         f"prometheus.tcp.port = {self.prometheus_port}"]
            if self.stats_interval_ms is not None:
                conf.append(f"collect_statistics_interval = {self.stats_interval_ms}")
            (self.base / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        else:
            (self.base / "plugins").write_text("[].\n")
        env = {
            **os.environ,
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": f"ferrymq-peer-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
        }
        self.proc = subprocess.Popen(
            [RABBITMQ_SERVER], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.proc.returncode}")
            if self._accepts_login() and (not self.management or self._management_ready()):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rabbitmq-server not ready within {timeout}s")

    def _management_ready(self) -> bool:
        import base64
        import urllib.request

        request = urllib.request.Request(
            f"{self.http_url}/api/overview",
            headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except Exception:
            return False

    def _accepts_login(self) -> bool:
        import pika  # imported lazily: peers.py is also used by scripts without a venv

        try:
            pika.BlockingConnection(pika.URLParameters(self.amqp_url)).close()
            return True
        except Exception:
            return False

    def pid(self) -> int | None:
        """The beam.smp process (for RSS figures), once started."""
        try:
            return int((self.base / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
        self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)
