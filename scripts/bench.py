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
    READY = re.compile(r"ferrymq ready amqp=\S+:(\d+) kafka=\S+:(\d+) http=\S+:(\d+)")

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.amqp_port = self.kafka_port = self.http_port = None
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
                    self.amqp_port, self.kafka_port, self.http_port = int(m[1]), int(m[2]), int(m[3])
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
        write_doc(DOC, render(res, AMQP_SCENARIOS, KAFKA_SCENARIOS))
        return 0
    for path in (FERRYMQ, PERF):
        if not path.exists():
            sys.exit(f"{path} missing: run `make bench` (it builds both)")
    if not os.path.exists(RABBITMQ_SERVER):
        sys.exit("rabbitmq-server missing: scripts/apt-install rabbitmq-server")
    bench = Bench(opts)
    bench.run()
    if not opts.no_doc:
        write_doc(DOC, render(bench.results, AMQP_SCENARIOS, KAFKA_SCENARIOS))
        log(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
