#!/usr/bin/env python3
"""`make bench`: ferrymq beside RabbitMQ on this machine, in one run, written to docs/benchmarks.md.

Starts a release ferrymq and a private RabbitMQ node (Debian's rabbitmq-server) on free
loopback ports, then measures with `ferrymq-perf`:
  resources   startup time to ready, idle RSS, RSS with 10,000 idle AMQP connections (both);
  A1-A5       the AMQP scenarios against both brokers, alternating (ABBA over the rounds);
  client      A1 and A2 against ferrymq with producer and consumer in two processes, to show
              whether one client process limits the figure;
  disk        dd (1 GiB, conv=fdatasync) and per-write sync latency on the data filesystem;
  K1-K3       the Kafka scenarios against ferrymq, with the broker's default durability and
              with fsync-always (topic config flush.messages=1);
  A1-TLS      A1 and K1 against ferrymq over TLS (amqps, a Kafka SSL listener; a throwaway CA
  K1-TLS      made with the openssl CLI), alternating with their plaintext twins on the same
              broker (ABBA, at least two rounds each): TLS/plaintext throughput.
Every ferrymq-perf report is kept as JSON under target/bench-results/<stamp>/, and the
"Brokers" section of docs/benchmarks.md (between the bench markers) is rewritten.

Only the Python standard library is used. Run as root or with permission to raise
RLIMIT_NOFILE (10,000 connections need as many descriptors in the client and the brokers).
"""

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_report import render, write_doc

ROOT = Path(__file__).resolve().parent.parent
FERRYMQ = ROOT / "target" / "release" / "ferrymq"
PERF = ROOT / "target" / "release" / "ferrymq-perf"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
DOC = ROOT / "docs" / "benchmarks.md"
NOFILE = 65536

# AMQP consumers in every scenario: manual acks with `multiple` every 100, prefetch 1000.
CONSUMER = ["--prefetch", "1000", "--multi-ack-every", "100"]
AMQP_SCENARIOS = {
    "A1": ("1 publisher, 1 consumer, 16 B transient, no confirms (flat out)",
           ["--size", "16", *CONSUMER]),
    "A2": ("1 publisher, 1 consumer, 1 KiB persistent to a durable queue, confirms window 1000",
           ["--size", "1024", "--persistent", "--durable", "--confirm", "1000", *CONSUMER]),
    "A3": ("A1's messages at a fixed 5,000 msg/s: end-to-end latency",
           ["--size", "16", "--rate", "5000", *CONSUMER]),
    "A4": ("1 publisher, fanout exchange to 10 queues, 1 consumer each, 16 B transient",
           ["--size", "16", "--fanout", "10", *CONSUMER]),
    "A5": ("drain a backlog: {backlog:,} 16 B transient messages published (confirmed, window "
           "1000) with no consumer, then 1 consumer drains them", ["--size", "16", *CONSUMER]),
}
KAFKA_COMMON = ["--size", "1024", "--acks", "all", "--partitions", "3"]
KAFKA_SCENARIOS = {
    "K1": ("1 producer, 1 KiB, acks=all, 3 partitions, linger 5 ms (produce throughput)",
           [*KAFKA_COMMON, "--linger-ms", "5", "--consumers", "0", "--keep"]),
    "K2": ("1 consumer (a group of one) reads K1's topic from the beginning",
           ["--producers", "0", "--consumers", "1", "--from-beginning", "--delete"]),
    "K3": ("1 producer at a fixed 5,000 msg/s, linger 0, 1 consumer: end-to-end latency",
           [*KAFKA_COMMON, "--linger-ms", "0", "--rate", "5000"]),
}
# Over TLS, beside a plaintext twin with the same arguments (the TLS budget of the security
# issue: TLS costs at most 30% of the twin's throughput).
TLS_SCENARIOS = {
    "A1-TLS": ("A1 over TLS (amqps)", "A1"),
    "K1-TLS": ("K1 over TLS (a Kafka SSL listener)", "K1"),
}
TLS_BUDGET = 0.70
# Run sizes: the full run (`make bench`, about 17 minutes) and `--quick` (`make bench QUICK=1`).
FULL = {"duration": 10.0, "warmup": 2.0, "rounds": 2, "backlog": 1_000_000, "connections": 10_000,
        "startups": 5, "dd_runs": 3}
QUICK = {"duration": 2.0, "warmup": 0.5, "rounds": 1, "backlog": 100_000, "connections": 1_000,
         "startups": 3, "dd_runs": 1}
# default: no flush configs (the broker's default policy); always: fsync before acks=all is
# answered; interval1s: Apache Kafka's trade-off on one node (fsync once a second, answer once
# appended), shown for comparison only.
POLICIES = {"default": [], "always": ["--topic-config", "flush.messages=1"],
            "interval1s": ["--topic-config", "flush.ms=1000"]}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def amqp_answers(port: int) -> bool:
    """True once the port answers the AMQP protocol header with a method frame
    (connection.start)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1) == b"\x01"
    except OSError:
        return False


def proc_status(pid: int, key: str) -> int | None:
    """A kB field of /proc/PID/status, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None




def raise_nofile(connections: int) -> None:
    """Raises RLIMIT_NOFILE (inherited by both brokers and ferrymq-perf) as far as allowed:
    the idle-connection test needs a descriptor per connection on each side."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError) as e:
        log(f"could not raise RLIMIT_NOFILE to {want}: {e}")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < connections + 1000:
        log(f"RLIMIT_NOFILE is {soft}: too low for {connections:,} connections")


def durability_lines(config: str) -> list[str]:
    """The `section.key = value` lines of `ferrymq --print-config` about fsync and flushing."""
    section, out = "", []
    for line in config.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif re.match(r"[\w.]*(fsync|flush)[\w.]*\s*=", line):
            out.append(f"{section}.{line}" if section else line)
    return out


def make_certs(out: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (EC P-256,
    valid two days), made with the openssl CLI: the broker gets cert.pem and key.pem, the
    clients trust ca.pem."""
    out.mkdir(parents=True, exist_ok=True)
    ca, ca_key = out / "ca.pem", out / "ca.key"
    cert, key, csr = out / "cert.pem", out / "key.pem", out / "server.csr"
    ext = out / "server.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                   "basicConstraints = critical, CA:FALSE\n"
                   "keyUsage = critical, digitalSignature\n"
                   "extendedKeyUsage = serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=ferrymq bench CA"],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ]
    for step in steps:
        r = subprocess.run([str(a) for a in step], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, step[:3]))} failed: {r.stderr.strip()}")
    return {"ca": ca, "cert": cert, "key": key}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def busy_processes(exclude: set[int]) -> list[str]:
    """Other processes using CPU right now (a 1 s sample of `top`)."""
    try:
        out = subprocess.run(["top", "-b", "-n", "2", "-d", "1", "-w", "200"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    last = out.split("\n\n")[-1].splitlines()
    busy = []
    for line in last[1:]:
        f = line.split()
        if len(f) >= 12 and f[0].isdigit() and int(f[0]) not in exclude:
            try:
                cpu = float(f[8])
            except ValueError:
                continue
            if cpu >= 5.0:
                busy.append(f"{f[11]} {cpu:.0f}%")
    return busy[:6]


class Ferrymq:
    READY = re.compile(r"ferrymq ready amqp=\S+:(\d+) kafka=\S+:(\d+) http=\S+:(\d+)")
    AMQPS = re.compile(r" amqps=\S+:(\d+)")
    KAFKA_LISTENER = re.compile(r"kafka listener on \S+ tells clients to connect to (\S+)")
    LISTENER_NAME = re.compile(r"\blistener=(\w+)")

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.amqp_port = self.kafka_port = self.http_port = None
        self.ready_ms = self.amqp_ms = None
        # make_certs' files: when set, start() adds amqps and a Kafka SSL listener.
        self.tls: dict[str, Path] | None = None
        self.amqps_port = None
        self.kafka_listeners: dict[str, str] = {}

    def tls_env(self) -> dict[str, str]:
        if not self.tls:
            return {}
        return {
            "FERRYMQ_TLS_CERTFILE": str(self.tls["cert"]),
            "FERRYMQ_TLS_KEYFILE": str(self.tls["key"]),
            "FERRYMQ_AMQP_TLS_ENABLED": "true",
            "FERRYMQ_AMQP_TLS_LISTEN": "127.0.0.1:0",
            "FERRYMQ_KAFKA_LISTENERS": json.dumps(["PLAINTEXT://127.0.0.1:0",
                                                   "SSL://127.0.0.1:0"]),
        }

    def start(self, fresh: bool = True) -> "Ferrymq":
        if fresh:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        ready = threading.Event()
        self.amqps_port, self.kafka_listeners = None, {}
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(FERRYMQ), "--data-dir", str(self.data_dir), "--amqp-listen", "127.0.0.1:0",
             "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
            env={**os.environ, **self.tls_env()})

        def drain(proc, out):
            for line in proc.stderr:
                out.write(line)
                if ready.is_set():
                    continue
                k = self.KAFKA_LISTENER.search(line)
                if k:
                    name = self.LISTENER_NAME.search(line)
                    self.kafka_listeners[name[1] if name else "PLAINTEXT"] = k[1]
                m = self.READY.search(line)
                if m:
                    self.ready_ms = (time.monotonic() - t0) * 1000
                    self.amqp_port, self.kafka_port, self.http_port = int(m[1]), int(m[2]), int(m[3])
                    s = self.AMQPS.search(line)
                    self.amqps_port = int(s[1]) if s else None
                    ready.set()
            out.close()

        threading.Thread(target=drain, args=(self.proc, open(self.log_path, "a")),
                         daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError(f"ferrymq not ready in 30 s; see {self.log_path}")
        if self.tls and (self.amqps_port is None or "SSL" not in self.kafka_listeners):
            self.stop()
            raise RuntimeError(f"ferrymq started without its TLS listeners; see {self.log_path}")
        while not amqp_answers(self.amqp_port):
            time.sleep(0.0005)
        self.amqp_ms = (time.monotonic() - t0) * 1000
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2f"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def amqps_uri(self) -> str:
        return f"amqps://guest:guest@127.0.0.1:{self.amqps_port}/%2f"

    @property
    def ssl_bootstrap(self) -> str:
        """The SSL listener's advertised address (what its metadata tells clients)."""
        return self.kafka_listeners["SSL"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class RabbitMQ:
    """A private rabbitmq-server node (no plugins) on free loopback ports, as tests/peers.py
    starts one, with RLIMIT_NOFILE raised for the connection test."""

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.dist_port = free_port()
        self.proc = None
        self.amqp_ms = None

    def start(self) -> "RabbitMQ":
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        (self.base / "plugins").write_text("[].\n")
        env = {
            **os.environ,
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": f"ferrymq-bench-{self.port}@localhost",
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
        t0 = time.monotonic()
        self.proc = subprocess.Popen([RABBITMQ_SERVER], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        while time.monotonic() - t0 < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.proc.returncode}")
            if amqp_answers(self.port):
                self.amqp_ms = (time.monotonic() - t0) * 1000
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError("rabbitmq-server not ready in 120 s")

    @property
    def pid(self) -> int:
        """beam.smp, the broker process (for RSS and CPU)."""
        return int((self.base / "pid").read_text().strip())

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


class Bench:
    def __init__(self, opts):
        self.opts = opts
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.out = ROOT / "target" / "bench-results" / stamp
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = Path(os.environ.get("FERRYMQ_BENCH_DIR", ROOT / "target" / "bench-data"))
        self.data.mkdir(parents=True, exist_ok=True)
        self.results: dict = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "load": [], "opts": {k: v for k, v in vars(opts).items()
                                                   if k in ("quick", "duration", "warmup", "rounds",
                                                            "backlog", "connections",
                                                            "dd_runs")},
                              "argv": sys.argv[1:]}
        self.ours: set[int] = {os.getpid()}
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))

    def wants(self, sid: str) -> bool:
        return not self.opts.only or sid in self.opts.only

    def note_load(self, when: str) -> None:
        self.results["load"].append((when, loadavg()))

    def perf(self, name: str, args: list[str], timeout: float = 900) -> dict:
        path = self.out / f"{name}.json"
        cmd = [str(PERF), *args, "--label", name, "--json", str(path)]
        log(f"{name}: {' '.join(cmd[1:])}")
        started = time.monotonic()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout)
        sys.stderr.write(r.stdout)
        if r.returncode != 0:
            raise RuntimeError(f"{name}: ferrymq-perf exited {r.returncode}")
        report = json.loads(path.read_text())
        report["wall_seconds"] = time.monotonic() - started
        report["command"] = "ferrymq-perf " + " ".join(
            a if a != str(path) else f"{name}.json" for a in cmd[1:])
        return report

    def timed(self) -> list[str]:
        return ["--duration", str(self.opts.duration), "--warmup", str(self.opts.warmup)]

    # -- phases --------------------------------------------------------------------------
    def environment(self) -> None:
        def cmd(*c):
            try:
                return subprocess.run(c, capture_output=True, text=True, timeout=20).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                return ""

        cpu = next((l.split(":", 1)[1].strip() for l in cmd("lscpu").splitlines()
                    if l.startswith("Model name")), platform.processor())
        mem = cmd("free", "-g").splitlines()
        fs = cmd("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(self.data))
        lock = (ROOT / "Cargo.lock").read_text()

        def locked(name):
            m = re.search(rf'name = "{re.escape(name)}"\nversion = "([^"]+)"', lock)
            return m[1] if m else "?"

        self.results["env"] = {
            "cpu": f"{os.cpu_count()} x {cpu}",
            "memory": mem[1].split()[1] + " GiB" if len(mem) > 1 else "?",
            "kernel": platform.release(),
            "filesystem": fs,
            "rustc": cmd("rustc", "--version"),
            "ferrymq": cmd(str(FERRYMQ), "--version"),
            "commit": cmd("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
            "rabbitmq": cmd("dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"),
            "erlang": cmd("dpkg-query", "-W", "-f", "${Version}", "erlang-base"),
            "lapin": locked("lapin"),
            "rdkafka": locked("rdkafka") + " (librdkafka " + locked("rdkafka-sys").split("+")[-1]
                       + ", bundled)",
            "openssl": cmd("openssl", "version"),
            "fsync_default": re.search(r'fsync = "(\w+)"', cmd(str(FERRYMQ), "--print-config"))[1],
            "durability_config": durability_lines(cmd(str(FERRYMQ), "--print-config")),
            "busy_at_start": busy_processes(self.ours),
        }

    def startup(self) -> None:
        runs = []
        for i in range(self.opts.startups):
            b = Ferrymq(self.data / "startup", self.out / "ferrymq-startup.log").start()
            runs.append((b.ready_ms, b.amqp_ms))
            b.stop()
        self.results["startup"] = {
            "ferrymq_ready_ms": [round(r, 1) for r, _ in runs],
            "ferrymq_amqp_ms": [round(a, 1) for _, a in runs],
        }

    def resources(self, fm: Ferrymq, rmq: RabbitMQ) -> None:
        time.sleep(2)
        res = {
            "ferrymq_idle": proc_status(fm.pid, "VmRSS"),
            "ferrymq_idle_anon": proc_status(fm.pid, "RssAnon"),
            "rabbitmq_idle": proc_status(rmq.pid, "VmRSS"),
            "rabbitmq_amqp_ms": rmq.amqp_ms,
        }
        for name, broker in (("ferrymq", fm), ("rabbitmq", rmq)):
            r = self.perf(f"conn-{name}", ["connections", "--uri", broker.uri, "--count",
                                           str(self.opts.connections), "--broker-pid",
                                           str(broker.pid), "--settle", "3"])
            res[f"{name}_conns"] = r
        self.results["resources"] = res

    def amqp(self, fm: Ferrymq, rmq: RabbitMQ) -> None:
        out = self.results.setdefault("amqp", {})
        for sid, (_, args) in AMQP_SCENARIOS.items():
            if not self.wants(sid):
                continue
            rounds = 1 if sid == "A5" else self.opts.rounds
            order = []
            for r in range(rounds):
                pair = [("ferrymq", fm), ("rabbitmq", rmq)]
                order += pair if r % 2 == 0 else pair[::-1]
            for i, (name, broker) in enumerate(order):
                extra = ["--backlog", str(self.opts.backlog)] if sid == "A5" else self.timed()
                self.note_load(f"{sid} {name}")
                rep = self.perf(f"{sid}-{name}-{i // 2 + 1}",
                                ["amqp", "--uri", broker.uri, "--broker-pid", str(broker.pid),
                                 *args, *extra])
                out.setdefault(sid, {}).setdefault(name, []).append(rep)

    def client_check(self, fm: Ferrymq) -> None:
        """A1 and A2 with the producer and the consumer in separate processes."""
        timed = self.timed()
        out = self.results.setdefault("client_check", {})
        for sid in ("A1", "A2"):
            if not self.wants(sid):
                continue
            _, args = AMQP_SCENARIOS[sid]
            queue = f"split-{sid.lower()}"
            base = ["amqp", "--uri", fm.uri, "--broker-pid", str(fm.pid), "--queue", queue,
                    *args, *timed]
            cons_json = self.out / f"{sid}-split-consumer.json"
            cons = subprocess.Popen(
                [str(PERF), *base, "--producers", "0", "--label", f"{sid}-split-consumer",
                 "--json", str(cons_json), "--quiet"], stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            prod = self.perf(f"{sid}-split-producer",
                             [*base, "--consumers", "0", "--keep", "--quiet"])
            cons.communicate(timeout=120)
            out[sid] = {"producer": prod, "consumer": json.loads(cons_json.read_text())}

    def disk(self) -> None:
        target = self.data / "dd.test"
        speeds, lat = [], None
        for _ in range(self.opts.dd_runs):
            r = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", "count=1024",
                                "conv=fdatasync"], capture_output=True, text=True)
            target.unlink(missing_ok=True)
            m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", r.stderr)
            if m:
                speeds.append(int(m[1]) / float(m[2]) / 1e6)
        r = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=4k", "count=500",
                            "oflag=dsync"], capture_output=True, text=True)
        target.unlink(missing_ok=True)
        m = re.search(r"copied, ([\d.]+) s", r.stderr)
        if m:
            lat = float(m[1]) / 500 * 1000
        self.results["disk"] = {"dd_mb_s": speeds, "sync_write_ms": lat}

    def kafka(self, fm: Ferrymq) -> None:
        timed = self.timed()
        out = self.results.setdefault("kafka", {})
        for policy, topic_cfg in POLICIES.items():
            topic = f"bench-k1-{policy}"
            for sid, (_, args) in KAFKA_SCENARIOS.items():
                if not self.wants(sid):
                    continue
                if sid == "K2" and "K1" not in out.get(policy, {}):
                    continue
                extra = [] if sid == "K2" else [*timed, *topic_cfg]
                if sid != "K3":
                    extra += ["--topic", topic]
                self.note_load(f"{sid} {policy}")
                rep = self.perf(f"{sid}-{policy}", ["kafka", "--bootstrap", fm.bootstrap,
                                                    "--broker-pid", str(fm.pid), *args, *extra])
                out.setdefault(policy, {})[sid] = rep

    def tls(self, fm: Ferrymq) -> None:
        """A1 and K1 over TLS, each beside its plaintext twin (the same arguments) on the same
        broker, alternating plaintext, TLS, TLS, plaintext, ... over at least two rounds, so
        neither side always runs first."""
        out = self.results.setdefault("tls", {})
        timed = ["--broker-pid", str(fm.pid), *self.timed()]
        ca = str(fm.tls["ca"])
        for sid, (_, twin) in TLS_SCENARIOS.items():
            if not self.wants(sid):
                continue
            if twin in AMQP_SCENARIOS:
                args = AMQP_SCENARIOS[twin][1]
                runs = {"plaintext": ["amqp", "--uri", fm.uri, *args],
                        "tls": ["amqp", "--uri", fm.amqps_uri, "--ca-file", ca, *args]}
            else:
                # A fresh topic per run, deleted after it (K1 keeps its topic for K2).
                args = [a for a in KAFKA_SCENARIOS[twin][1] if a != "--keep"]
                runs = {"plaintext": ["kafka", "--bootstrap", fm.bootstrap, *args],
                        "tls": ["kafka", "--bootstrap", fm.ssl_bootstrap, "--security-protocol",
                                "ssl", "--ca-file", ca, *args]}
            self.note_load(sid)
            got = out.setdefault(sid, {"twin": twin, "plaintext": [], "tls": []})
            names = {"plaintext": f"{twin}-plaintext", "tls": sid}
            for r in range(max(2, self.opts.rounds)):
                for mode in ("plaintext", "tls") if r % 2 == 0 else ("tls", "plaintext"):
                    got[mode].append(self.perf(f"{names[mode]}-{r + 1}", [*runs[mode], *timed]))

    def run(self) -> None:
        raise_nofile(self.opts.connections)
        self.environment()
        self.note_load("start")
        if not self.opts.skip_resources:
            self.startup()
        certs = None
        if any(self.wants(sid) for sid in TLS_SCENARIOS):
            certs = make_certs(self.tmp / "tls")
        fm = Ferrymq(self.data / "ferrymq", self.out / "ferrymq.log")
        # The resource figures are of the plaintext-only broker, as before TLS existed; the
        # broker under load also listens on amqps and a Kafka SSL listener.
        if self.opts.skip_resources:
            fm.tls = certs
        fm.start()
        self.ours.add(fm.pid)
        rmq = RabbitMQ(self.tmp / "rabbitmq")
        try:
            rmq.start()
            if not self.opts.skip_resources:
                self.resources(fm, rmq)
                # Fresh brokers for the load: the connection test leaves memory behind.
                fm.stop()
                fm.tls = certs
                fm.start()
                rmq.stop()
                rmq.start()
            self.results["broker_pids"] = {"ferrymq": fm.pid, "rabbitmq": rmq.pid}
            self.amqp(fm, rmq)
            self.client_check(fm)
        finally:
            rmq.stop()
            shutil.rmtree(rmq.base, ignore_errors=True)
        try:
            self.note_load("disk")
            self.disk()
            self.kafka(fm)
            if certs:
                self.tls(fm)
        finally:
            fm.stop()
        self.note_load("end")
        self.results["env"]["busy_at_end"] = busy_processes(self.ours)
        self.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))
        log(f"results in {self.out}")


# -- the document -----------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a short run to check the set-up (a few minutes): the defaults become "
                         + ", ".join(f"--{k} {v}" for k, v in QUICK.items())
                         + "; the doc says it was a quick run (also: env BENCH_QUICK=1)")
    ap.add_argument("--duration", type=float, help=f"measured seconds per timed run ({FULL['duration']})")
    ap.add_argument("--warmup", type=float, help=f"warm-up seconds per timed run ({FULL['warmup']})")
    ap.add_argument("--rounds", type=int, help=f"rounds of A1-A4 per broker ({FULL['rounds']})")
    ap.add_argument("--backlog", type=int, help=f"A5 backlog size ({FULL['backlog']:,})")
    ap.add_argument("--connections", type=int, help=f"idle connections ({FULL['connections']:,})")
    ap.add_argument("--startups", type=int, help=f"ferrymq starts timed ({FULL['startups']})")
    ap.add_argument("--dd-runs", type=int, help=f"dd runs of 1 GiB ({FULL['dd_runs']})")
    ap.add_argument("--only", type=lambda s: set(s.split(",")), default=None,
                    help="comma-separated scenario ids (e.g. A1,K1,A1-TLS,K1-TLS; an -TLS id "
                         "runs its plaintext twin beside it); resources still run")
    ap.add_argument("--skip-resources", action="store_true")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--render", type=Path, help="only render the doc from a results.json")
    opts = ap.parse_args()
    known = {*AMQP_SCENARIOS, *KAFKA_SCENARIOS, *TLS_SCENARIOS}
    if opts.only and opts.only - known:
        ap.error(f"--only: unknown scenario ids {sorted(opts.only - known)}; known: "
                 + ",".join(sorted(known)))
    opts.quick = opts.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    for key, full in FULL.items():
        if getattr(opts, key) is None:
            setattr(opts, key, QUICK[key] if opts.quick else full)
    if opts.render:
        res = json.loads(opts.render.read_text())
        write_doc(DOC, render(res, AMQP_SCENARIOS, KAFKA_SCENARIOS, TLS_SCENARIOS, TLS_BUDGET))
        return 0
    for path in (FERRYMQ, PERF):
        if not path.exists():
            sys.exit(f"{path} missing: run `make bench` (it builds both)")
    if not os.path.exists(RABBITMQ_SERVER):
        sys.exit("rabbitmq-server missing: scripts/apt-install rabbitmq-server")
    bench = Bench(opts)
    try:
        bench.run()
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    if not opts.no_doc:
        write_doc(DOC, render(bench.results, AMQP_SCENARIOS, KAFKA_SCENARIOS, TLS_SCENARIOS,
                              TLS_BUDGET))
        log(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
