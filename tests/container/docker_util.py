"""Helpers for the container tests: the Docker engine, the images, and containers that are
removed when the test ends.

- `require_docker()`: skips (with the reason) when `docker info` fails; under CI=true fails.
- `ferrymq_image()`: docker/Dockerfile built by scripts/docker-image.sh from the binary under
  test (`$TEST_FERRYMQ_BIN`), tagged ferrymq:test, once per session.
- `clients_image()`: a scratch image of Debian's kcat and amqp-tools (no registry needed), for
  clients inside the container network.
- `Docker`: runs containers and networks and removes them afterwards.
- Fixtures, imported by name into each test module: `engine` (module-wide: the engine must
  answer) and `dock` (a `Docker` cleaned up after the test).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, _binary

IMAGE = "ferrymq:test"
CLIENTS = "ferrymq-clients:test"
_built: dict = {}


def docker(*args, timeout=120, check=True, input=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def require_docker():
    reason = None
    if shutil.which("docker") is None:
        reason = "the docker CLI is not installed"
    else:
        try:
            info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
            if info.returncode != 0:
                reason = f"docker info failed: {info.stderr.strip()[:300]}"
        except subprocess.TimeoutExpired:
            reason = "docker info did not answer within 30 s"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and no Docker engine: {reason}")
    pytest.skip(reason)


def ferrymq_image() -> str:
    if "ferrymq" not in _built:
        script = ROOT / "scripts" / "docker-image.sh"
        proc = subprocess.run([str(script), _binary(), IMAGE], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _built["ferrymq"] = IMAGE
    return _built["ferrymq"]


def clients_image() -> str:
    if "clients" not in _built:
        programs = [shutil.which(p) for p in ("kcat", "amqp-publish", "amqp-get", "amqp-declare-queue")]
        if not all(programs):
            pytest.fail(f"kcat and amqp-tools are needed (make test installs them): {programs}")
        with tempfile.TemporaryDirectory() as ctx:
            subprocess.run([str(ROOT / "scripts" / "scratch-rootfs.sh"), f"{ctx}/rootfs", *programs],
                           check=True, capture_output=True, timeout=120)
            Path(ctx, "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
            docker("build", "--quiet", "-t", CLIENTS, ctx, timeout=300)
        _built["clients"] = CLIENTS
    return _built["clients"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Docker:
    """Containers and networks of one test, removed at its end."""

    def __init__(self):
        self.containers: list[str] = []
        self.networks: list[str] = []
        self.volumes: list[str] = []

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def network(self) -> str:
        name = self.name("fmq-net")
        docker("network", "create", name)
        self.networks.append(name)
        return name

    def volume(self) -> str:
        name = self.name("fmq-data")
        docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def run(self, *args, name=None) -> str:
        name = name or self.name("fmq")
        docker("run", "-d", "--name", name, *args)
        self.containers.append(name)
        return name

    def client(self, network: str, *command, timeout=60, input=None) -> subprocess.CompletedProcess:
        """Runs one command in the clients image on `network`; returns the finished process."""
        args = ["run", "--rm", "-i" if input is not None else "--init", "--network", network, clients_image(), *command]
        return docker(*args, timeout=timeout, check=False, input=input)

    def logs(self, name: str) -> str:
        proc = docker("logs", name, check=False)
        return proc.stdout + proc.stderr

    def wait_for_log(self, name: str, needle: str, timeout=30.0, since_lines=0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.logs(name).splitlines()[since_lines:]
            for line in lines:
                if needle in line:
                    return line
            time.sleep(0.1)
        raise AssertionError(f"{name}: no log line with {needle!r} in {timeout}s:\n{self.logs(name)[-3000:]}")

    def state(self, name: str) -> dict:
        return json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)

    def cleanup(self):
        for c in self.containers:
            docker("rm", "-f", "-v", c, check=False)
        for n in self.networks:
            docker("network", "rm", n, check=False)
        for v in self.volumes:
            docker("volume", "rm", "-f", v, check=False)


@pytest.fixture(scope="module", autouse=True)
def engine():
    require_docker()


@pytest.fixture
def dock():
    d = Docker()
    yield d
    d.cleanup()
