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
              with fsync-always (topic config flush.messages=1).
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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FERRYMQ = ROOT / "target" / "release" / "ferrymq"
PERF = ROOT / "target" / "release" / "ferrymq-perf"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
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
# Run sizes: the full run (`make bench`, about 15 minutes) and `--quick` (`make bench QUICK=1`).
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


def mib(b: int | None) -> float | None:
    return None if b is None else b / 1048576


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
    READY = re.compile(r"ferrymq ready amqp=\S+:(\d+) kafka=\S+:(\d+)")

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.amqp_port = self.kafka_port = None
        self.ready_ms = self.amqp_ms = None

    def start(self, fresh: bool = True) -> "Ferrymq":
        if fresh:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        ready = threading.Event()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(FERRYMQ), "--data-dir", str(self.data_dir), "--amqp-listen", "127.0.0.1:0",
             "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")

        def drain(proc, out):
            for line in proc.stderr:
                out.write(line)
                m = self.READY.search(line)
                if m and not ready.is_set():
                    self.ready_ms = (time.monotonic() - t0) * 1000
                    self.amqp_port, self.kafka_port = int(m[1]), int(m[2])
                    ready.set()
            out.close()

        threading.Thread(target=drain, args=(self.proc, open(self.log_path, "a")),
                         daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError(f"ferrymq not ready in 30 s; see {self.log_path}")
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
                                                            "dd_runs")}}
        self.ours: set[int] = {os.getpid()}

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
            if self.opts.only and sid not in self.opts.only:
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
            if self.opts.only and sid not in self.opts.only:
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
                if self.opts.only and sid not in self.opts.only:
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

    def run(self) -> None:
        raise_nofile(self.opts.connections)
        self.environment()
        self.note_load("start")
        if not self.opts.skip_resources:
            self.startup()
        fm = Ferrymq(self.data / "ferrymq", self.out / "ferrymq.log").start()
        self.ours.add(fm.pid)
        rmq = RabbitMQ(Path(tempfile.mkdtemp(prefix="bench-rabbitmq-")))
        try:
            rmq.start()
            if not self.opts.skip_resources:
                self.resources(fm, rmq)
                # Fresh brokers for the load: the connection test leaves memory behind.
                fm.stop()
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
        finally:
            fm.stop()
        self.note_load("end")
        self.results["env"]["busy_at_end"] = busy_processes(self.ours)
        self.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))
        log(f"results in {self.out}")


# -- the document -----------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0, unit=""):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}{unit}"
    return f"{x:,.{digits}f}{unit}"


def cpu_per_op(report):
    """Broker CPU microseconds per message published plus message delivered."""
    ops = report["publish"]["msgs_per_sec"] + report["consume"]["msgs_per_sec"]
    cores = report.get("broker_cpu_cores")
    return None if cores is None or not ops else cores * 1e6 / ops


def ratio(a, b):
    return None if a is None or not b else a / b


def render(res: dict) -> str:
    env = res["env"]
    opts = argparse.Namespace(**res["opts"])
    L = []
    w = L.append
    w(BEGIN)
    w("## Brokers: ferrymq beside RabbitMQ (`make bench`)")
    w("")
    w(f"Generated by `scripts/bench.py` from the run of {res['started']} to {res['finished']} "
      f"(commit {env['commit']}); every figure below is from that one run. The raw reports "
      f"(one JSON per ferrymq-perf run) were in `target/bench-results/`.")
    w("")
    w("### Machine, versions, load")
    w("")
    w(f"- {env['cpu']}, {env['memory']} RAM, Linux {env['kernel']}; data filesystem "
      f"`{env['filesystem']}`.")
    w(f"- {env['ferrymq']} (release build, `{env['rustc']}`); RabbitMQ {env['rabbitmq']} "
      f"(Debian) on Erlang {env['erlang']}, default configuration, no plugins.")
    w(f"- Clients: ferrymq-perf with lapin {env['lapin']} and rdkafka {env['rdkafka']}. "
      f"Brokers and clients share the {env['cpu'].split(' x ')[0]} cores.")
    durability = ", ".join(f"`{l}`" for l in env.get("durability_config", [])) or (
        f"`storage.fsync = \"{env['fsync_default']}\"`")
    w(f"- ferrymq's durability defaults (`ferrymq --print-config`): {durability}.")
    loads = "; ".join(f"{k} {v}" for k, v in res["load"])
    w(f"- Load average (1/5/15 min) when each phase began: {loads}.")
    peak = max((float(v.split()[0]) for _, v in res["load"]), default=0.0)
    cores = os.cpu_count() or 1
    others = bool(env.get("busy_at_start") or env.get("busy_at_end"))
    if peak > cores + 0.5 and others:
        w(f"- **The machine was loaded during this run**: the 1-minute load average reached "
          f"{peak:.1f} on {cores} cores, with other processes (below) compiling or testing. "
          "Throughput figures are lower and noisier than on an idle machine; latency tails "
          "and fsync times are longer. Broker CPU per message is the figure least affected.")
    elif peak > cores + 0.5:
        w(f"- The 1-minute load average reached {peak:.1f} on {cores} cores from the benchmark "
          "itself: a broker and ferrymq-perf running flat out keep more threads runnable than "
          "there are cores. No other process used CPU when the run began or ended.")
    busy = ", ".join(env.get("busy_at_start") or []) or "none"
    busy_end = ", ".join(env.get("busy_at_end") or []) or "none"
    w(f"- Other processes using CPU: at the start {busy}; at the end {busy_end}.")
    w("")
    w("### Commands")
    w("")
    quick = getattr(opts, "quick", False)
    if quick:
        w("**This was a quick run** (`make bench QUICK=1`: short windows, one round, a smaller "
          "backlog and fewer connections) to check the set-up; its figures are indicative only. "
          "`make bench` runs the full configuration.")
        w("")
    w("```sh")
    w("make bench            # = cargo build --release -p ferrymq -p ferrymq-perf && scripts/bench.py")
    w("make bench QUICK=1    # the same with scripts/bench.py --quick")
    w(f"scripts/bench.py{' --quick' if quick else ''} --duration {opts.duration} --warmup "
      f"{opts.warmup} --rounds {opts.rounds} --backlog {opts.backlog} --connections "
      f"{opts.connections}")
    w("```")
    w("")
    w("Each scenario runs `ferrymq-perf` (`target/release/ferrymq-perf --help`) once per broker "
      "and round; the commands, with the ports of this run:")
    w("")
    w("```sh")
    shown = set()
    for sid, by in res.get("amqp", {}).items():
        for name, reps in by.items():
            if (sid, name) not in shown and name == "ferrymq":
                shown.add((sid, name))
                w(reps[0]["command"].replace(f" --label {sid}-{name}-1", ""))
    for policy, by in res.get("kafka", {}).items():
        for sid, rep in by.items():
            w(rep["command"])
    w("```")
    w("")

    # Resources
    r = res.get("resources")
    if r:
        st = res["startup"]
        fc, rc = r["ferrymq_conns"], r["rabbitmq_conns"]
        w("### Resources")
        w("")
        w("| figure | ferrymq | RabbitMQ | ferrymq/RabbitMQ |")
        w("| --- | ---: | ---: | ---: |")
        fr, ra = med(st["ferrymq_ready_ms"]), r["rabbitmq_amqp_ms"]
        w(f"| startup to ready (ms; ferrymq: median of {len(st['ferrymq_ready_ms'])} starts, "
          f"ready line; RabbitMQ: AMQP answers) | {fmt(fr, 1)} | {fmt(ra)} | "
          f"{fmt(ratio(fr, ra), 4)} |")
        w(f"| startup to AMQP answering connection.start (ms) | "
          f"{fmt(med(st['ferrymq_amqp_ms']), 1)} | {fmt(ra)} | "
          f"{fmt(ratio(med(st['ferrymq_amqp_ms']), ra), 4)} |")
        fi, ri = mib(r["ferrymq_idle"]), mib(r["rabbitmq_idle"])
        w(f"| idle RSS (MiB) | {fmt(fi, 1)} | {fmt(ri, 1)} | {fmt(ratio(fi, ri), 3)} |")
        fw, rw = fc["rss_with_connections_mib"], rc["rss_with_connections_mib"]
        w(f"| RSS with {fc['connections']:,} idle AMQP connections (MiB) | {fmt(fw, 1)} | "
          f"{fmt(rw, 1)} | {fmt(ratio(fw, rw), 3)} |")
        fk, rk = fc["kib_per_connection"], rc["kib_per_connection"]
        w(f"| memory per idle connection (KiB) | {fmt(fk, 1)} | {fmt(rk, 1)} | "
          f"{fmt(ratio(fk, rk), 3)} |")
        w(f"| time to open them (s, {fc['settings']['parallel']} handshakes at a time) | "
          f"{fmt(fc['open_seconds'], 1)} | {fmt(rc['open_seconds'], 1)} | |")
        w("")
        w(f"ferrymq's starts (ready line, ms): {st['ferrymq_ready_ms']}; to AMQP: "
          f"{st['ferrymq_amqp_ms']}. RSS is `VmRSS` of the broker process (RabbitMQ: "
          f"`beam.smp`, without the small `epmd`); ferrymq's idle `RssAnon` was "
          f"{fmt(mib(r['ferrymq_idle_anon']), 1)} MiB.")
        w("")

    # AMQP
    am = res.get("amqp", {})
    if am:
        w("### AMQP scenarios (A1-A5)")
        w("")
        for sid, (desc, _) in AMQP_SCENARIOS.items():
            if sid in am:
                w(f"- **{sid}**: {desc.format(backlog=opts.backlog)}.")
        w("")
        w("Consumers ack with `multiple` every 100 deliveries under prefetch 1000; every "
          "producer and consumer has its own connection. Throughput is over the measured "
          f"window ({opts.duration} s after {opts.warmup} s of warm-up; A5: from the first "
          "delivery to the last). *pub* counts messages the broker accepted (confirmed, with "
          "confirms), *cons* messages delivered; end-to-end throughput is *cons* (A4: "
          "deliveries to all 10 queues). Median over the rounds (values of each round in "
          "brackets); brokers alternate ferrymq, RabbitMQ, RabbitMQ, ferrymq, ...")
        w("")
        w("| scenario | broker | pub msg/s | cons msg/s | cons MB/s | latency p50 / p99 / p99.9 / "
          "max (ms) | broker CPU (cores) | broker CPU µs per pub+delivery | client CPU | "
          "broker RSS max (MiB) |")
        w("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
        for sid, by in am.items():
            for name in ("ferrymq", "rabbitmq"):
                reps = by.get(name, [])
                if not reps:
                    continue
                pub = [x["publish"]["msgs_per_sec"] for x in reps]
                cons = [x["consume"]["msgs_per_sec"] for x in reps]
                mbs = [x["consume"]["mb_per_sec"] for x in reps]
                lat = [x["latency"] for x in reps if x["latency"]]
                p = lambda k: fmt(med([l[k] for l in lat]), 3)
                latency = (f"{p('p50_ms')} / {p('p99_ms')} / {p('p999_ms')} / {p('max_ms')}"
                           if lat else "n/a")
                each = ", ".join(fmt(c) for c in cons)
                bc = med([x.get("broker_cpu_cores") for x in reps])
                cc = med([x.get("client_cpu_cores") for x in reps])
                rss = med([x["broker_rss"]["max_mib"] for x in reps if x["broker_rss"]])
                extra = ""
                if sid == "A5":
                    extra = f" (fill {fmt(med([x['extra'].get('fill_msgs_per_sec') for x in reps]))}/s)"
                w(f"| {sid} | {'ferrymq' if name == 'ferrymq' else 'RabbitMQ'} | "
                  f"{fmt(med(pub))}{extra} | {fmt(med(cons))} [{each}] | {fmt(med(mbs), 1)} | "
                  f"{latency} | {fmt(bc, 2)} | {fmt(med([cpu_per_op(x) for x in reps]), 2)} | "
                  f"{fmt(cc, 2)} | {fmt(rss, 0)} |")
        w("")
        w("Broker CPU per publish+delivery (CPU time of the broker process over the window "
          "divided by messages published plus messages delivered) does not depend on how much "
          "of the 2 cores the client or other processes took, so it compares the brokers' own "
          "work even on a loaded machine.")
        w("")
        w("| scenario | ferrymq/RabbitMQ end-to-end throughput | ferrymq/RabbitMQ p99 latency | "
          "ferrymq/RabbitMQ broker CPU per publish+delivery |")
        w("| --- | ---: | ---: | ---: |")
        for sid, by in am.items():
            f, r_ = by.get("ferrymq", []), by.get("rabbitmq", [])
            tc = ratio(med([x["consume"]["msgs_per_sec"] for x in f]),
                       med([x["consume"]["msgs_per_sec"] for x in r_]))
            lp = ratio(med([x["latency"]["p99_ms"] for x in f if x["latency"]]),
                       med([x["latency"]["p99_ms"] for x in r_ if x["latency"]]))
            cp = ratio(med([cpu_per_op(x) for x in f]), med([cpu_per_op(x) for x in r_]))
            w(f"| {sid} | {fmt(tc, 2)}x | {fmt(lp, 3)} | {fmt(cp, 3)} |")
        w("")

    cc = res.get("client_check", {})
    if cc:
        w("### Is the client the bottleneck?")
        w("")
        w("The same scenarios against ferrymq with the producer and the consumer in two "
          "ferrymq-perf processes (each with its own runtime and lapin I/O threads) instead "
          "of one:")
        w("")
        w("| scenario | one process: pub / cons msg/s | two processes: pub / cons msg/s | "
          "client CPU (cores), one vs two processes |")
        w("| --- | ---: | ---: | --- |")
        for sid, d in cc.items():
            one = am.get(sid, {}).get("ferrymq", [])
            p1 = med([x["publish"]["msgs_per_sec"] for x in one])
            c1 = med([x["consume"]["msgs_per_sec"] for x in one])
            cpu1 = med([x.get("client_cpu_cores") for x in one])
            p2 = d["producer"]["publish"]["msgs_per_sec"]
            c2 = d["consumer"]["consume"]["msgs_per_sec"]
            cpu2 = (d["producer"].get("client_cpu_cores") or 0) + (
                d["consumer"].get("client_cpu_cores") or 0)
            w(f"| {sid} | {fmt(p1)} / {fmt(c1)} | {fmt(p2)} / {fmt(c2)} | "
              f"{fmt(cpu1, 2)} vs {fmt(cpu2, 2)} |")
        w("")

    # Disk and Kafka
    d = res.get("disk")
    ka = res.get("kafka", {})
    dd = med(d["dd_mb_s"]) if d else None
    if ka:
        w("### Kafka scenarios (K1-K3), ferrymq only")
        w("")
        for sid, (desc, _) in KAFKA_SCENARIOS.items():
            w(f"- **{sid}**: {desc}.")
        w("")
        if d:
            w(f"Raw disk, same filesystem, same run: `dd if=/dev/zero of=<data>/dd.test bs=1M "
              f"count=1024 conv=fdatasync` gave {', '.join(fmt(s) for s in d['dd_mb_s'])} MB/s "
              f"(median **{fmt(dd)} MB/s**); one 4 KiB write + sync (`oflag=dsync`) took "
              f"{fmt(d['sync_write_ms'], 2)} ms.")
            w("")
        w("*default*: the topic is created without flush configs, so it gets the broker's "
          "default policy (the durability defaults listed under \"Machine, versions, load\"); "
          "*always*: the topic is created with "
          "`flush.messages=1` (fsync before acks=all is answered, group commit); "
          "*interval1s*: the topic is created with `flush.ms=1000` (answered once appended, "
          "fsync every second: what Apache Kafka trades on one node), for comparison. Records/s "
          "and MB/s of 1 KiB values (payload only); *% of dd* is K1's produce MB/s against the "
          "raw disk (the fsync-always target); K2 reads what K1 wrote (from the page cache).")
        w("")
        w("| scenario | policy | produce rec/s | consume rec/s | MB/s | % of dd | latency "
          "p50 / p99 / p99.9 / max (ms) | broker CPU | client CPU |")
        w("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
        for policy, by in ka.items():
            for sid, x in by.items():
                mb = x["publish"]["mb_per_sec"] if sid == "K1" else x["consume"]["mb_per_sec"]
                l = x["latency"] if sid == "K3" else None
                latency = (f"{l['p50_ms']:.3f} / {l['p99_ms']:.3f} / {l['p999_ms']:.3f} / "
                           f"{l['max_ms']:.3f}" if l else "")
                # Only K1 writes: reads and a 5,000/s trickle are not disk-bound figures.
                pct = ratio(mb, dd) if sid == "K1" else None
                w(f"| {sid} | {policy} | {fmt(x['publish']['msgs_per_sec'])} | "
                  f"{fmt(x['consume']['msgs_per_sec'])} | {fmt(mb, 1)} | "
                  f"{fmt(pct * 100, unit='%') if pct else ''} | {latency} | "
                  f"{fmt(x.get('broker_cpu_cores'), 2)} | {fmt(x.get('client_cpu_cores'), 2)} |")
        w("")

    # Targets
    w("### Against the targets (issue 7)")
    w("")
    w("| target | measured | met? |")
    w("| --- | --- | --- |")

    def row(target, measured, ok):
        w(f"| {target} | {measured} | {'**yes**' if ok else ('no' if ok is not None else 'n/a')} |")

    for sid in ("A1", "A2"):
        if sid in am:
            f = med([x["consume"]["msgs_per_sec"] for x in am[sid].get("ferrymq", [])])
            r_ = med([x["consume"]["msgs_per_sec"] for x in am[sid].get("rabbitmq", [])])
            q = ratio(f, r_)
            row(f"{sid}: >= 3x RabbitMQ's end-to-end throughput",
                f"{fmt(f)} vs {fmt(r_)} msg/s = {fmt(q, 2)}x", q is not None and q >= 3)
    if "A3" in am:
        f = med([x["latency"]["p99_ms"] for x in am["A3"]["ferrymq"] if x["latency"]])
        r_ = med([x["latency"]["p99_ms"] for x in am["A3"]["rabbitmq"] if x["latency"]])
        row("A3: p99 below RabbitMQ's", f"{fmt(f, 3)} vs {fmt(r_, 3)} ms",
            None if f is None or r_ is None else f < r_)
    dflt = ka.get("default", {})
    alw = ka.get("always", {})
    for sid, key in (("K1", "publish"), ("K2", "consume")):
        if sid in dflt:
            v = dflt[sid][key]["msgs_per_sec"]
            row(f"{sid} default policy: > 300,000 records/s of 1 KiB", f"{fmt(v)} rec/s",
                v > 300_000)
        if sid == "K1" and sid in alw and dd:
            mb = alw[sid][key]["mb_per_sec"]
            row(f"{sid} fsync-always: >= 80% of raw disk", f"{fmt(mb, 1)} of {fmt(dd)} MB/s = "
                f"{fmt(mb / dd * 100)}%", mb >= 0.8 * dd)
    for policy, by in ka.items():
        if "K3" in by and by["K3"]["latency"]:
            p99 = by["K3"]["latency"]["p99_ms"]
            note = "" if policy in ("default", "always") else ", for comparison"
            row(f"K3 ({policy}{note}): p99 end-to-end < 5 ms", f"{fmt(p99, 3)} ms", p99 < 5)
    if r:
        fr = med(res["startup"]["ferrymq_ready_ms"])
        row("startup to ready < 50 ms", f"{fmt(fr, 1)} ms", fr < 50)
        fi = mib(r["ferrymq_idle"])
        row("idle RSS < 20 MiB", f"{fmt(fi, 1)} MiB", fi is not None and fi < 20)
    w("")
    w(END)
    return "\n".join(L)


def write_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        marker = "\n## "
        i = text.find(marker)
        text = (text[:i] + "\n\n" + section + "\n" + text[i:]) if i >= 0 else (
            text + "\n" + section + "\n")
    DOC.write_text(text)


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
                    help="comma-separated scenario ids (e.g. A1,K1); resources still run")
    ap.add_argument("--skip-resources", action="store_true")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--render", type=Path, help="only render the doc from a results.json")
    opts = ap.parse_args()
    opts.quick = opts.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    for key, full in FULL.items():
        if getattr(opts, key) is None:
            setattr(opts, key, QUICK[key] if opts.quick else full)
    if opts.render:
        res = json.loads(opts.render.read_text())
        write_doc(render(res))
        return 0
    for path in (FERRYMQ, PERF):
        if not path.exists():
            sys.exit(f"{path} missing: run `make bench` (it builds both)")
    if not os.path.exists(RABBITMQ_SERVER):
        sys.exit("rabbitmq-server missing: scripts/apt-install rabbitmq-server")
    bench = Bench(opts)
    bench.run()
    if not opts.no_doc:
        write_doc(render(bench.results))
        log(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
