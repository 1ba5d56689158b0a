#!/usr/bin/env python3
"""`make bench` (management part): the HTTP API and metrics with many queues, beside RabbitMQ.

  M1  10,000 queues with a trickle each (one message): latency of
      GET /api/queues?page=1&page_size=100, GET /api/overview, GET /metrics (aggregated) and
      GET /metrics/per-object, on ferrymq and on RabbitMQ 3.10 with its management and
      prometheus plugins (the same requests, keep-alive, sequential).
  M2  A1 (1 publisher, 1 consumer, 16 B transient, flat out) with and without a scrape of
      /metrics and /api/queues?page=1&page_size=100 every second, alternating ABBA, on ferrymq.

Writes target/bench-results/<stamp>/management.json and rewrites the section between the
`bench-management` markers of docs/benchmarks.md. Needs the venv (pika) and release builds of
ferrymq and ferrymq-perf (`make bench` builds them).
"""

import argparse
import base64
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench import AMQP_SCENARIOS, DOC, FERRYMQ, ROOT, Bench, Ferrymq, log  # noqa: E402
from bench_report import write_doc  # noqa: E402
from peers import RabbitMQ  # noqa: E402

BEGIN, END = "<!-- bench-management:begin -->", "<!-- bench-management:end -->"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
PATHS = {
    "queues page 1 (100)": "/api/queues?page=1&page_size=100",
    "overview": "/api/overview",
    "metrics (aggregated)": "/metrics",
    "metrics (per object)": "/metrics/per-object",
}
TARGETS = {"queues page 1 (100)": 100.0, "metrics (aggregated)": 200.0}


def declare(amqp_url: str, count: int) -> float:
    """Declares `count` queues with one message each; returns seconds taken."""
    t0 = time.monotonic()
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    for i in range(count):
        ch.queue_declare(f"bench-q-{i:05}")
        ch.basic_publish("", f"bench-q-{i:05}", b"x")
    conn.close()
    return time.monotonic() - t0


def get(port: int, path: str) -> None:
    timings(port, path, 1)


def timings(port: int, path: str, runs: int) -> dict:
    """Milliseconds per request over one keep-alive connection (a first warm-up request is not
    counted)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples, size = [], 0
    for i in range(runs + 1):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=AUTH)
        response = conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path} on :{port}: {response.status} {body[:200]!r}")
        if i:
            samples.append(elapsed)
        size = len(body)
    conn.close()
    samples.sort()
    return {"median_ms": statistics.median(samples),
            "p95_ms": samples[max(0, int(len(samples) * 0.95) - 1)], "bytes": size}


class Scraper:
    """GETs the metrics and the first page of queues every second until stopped."""

    def __init__(self, port: int):
        self.port, self.stop_flag, self.count = port, threading.Event(), 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_flag.wait(1.0):
            for path in ("/metrics", "/api/queues?page=1&page_size=100"):
                get(self.port, path)
            self.count += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)


def m1(bench: Bench, queues: int, runs: int) -> dict:
    out = {"queues": queues}
    fm = Ferrymq(bench.data / "mgmt-ferrymq", bench.out / "ferrymq-mgmt.log").start()
    try:
        out["ferrymq_declare_s"] = declare(fm.uri, queues)
        # Two samples, so rates exist as they would in a running broker.
        time.sleep(11)
        out["ferrymq"] = {name: timings(fm.http_port, path, runs) for name, path in PATHS.items()}
    finally:
        fm.stop()
    rmq = RabbitMQ(Path(tempfile.mkdtemp(prefix="bench-rabbitmq-mgmt-")), management=True,
                   prometheus=True)
    try:
        rmq.start(timeout=120)
        out["rabbitmq_declare_s"] = declare(rmq.amqp_url, queues)
        time.sleep(11)
        out["rabbitmq"] = {}
        for name, path in PATHS.items():
            port = rmq.prometheus_port if path.startswith("/metrics") else rmq.http_port
            out["rabbitmq"][name] = timings(port, path, runs)
    finally:
        rmq.stop()
    return out


def m2(bench: Bench, rounds: int) -> dict:
    _, args = AMQP_SCENARIOS["A1"]
    fm = Ferrymq(bench.data / "mgmt-a1", bench.out / "ferrymq-mgmt-a1.log").start()
    runs = {"plain": [], "scraped": []}
    scrapes = 0
    try:
        order = []
        for r in range(rounds):
            order += ["plain", "scraped"] if r % 2 == 0 else ["scraped", "plain"]
        for i, kind in enumerate(order):
            cmd = ["amqp", "--uri", fm.uri, "--broker-pid", str(fm.pid), *args, *bench.timed()]
            if kind == "scraped":
                with Scraper(fm.http_port) as s:
                    rep = bench.perf(f"M2-{kind}-{i}", cmd)
                scrapes += s.count
            else:
                rep = bench.perf(f"M2-{kind}-{i}", cmd)
            runs[kind].append(rep["publish"]["msgs_per_sec"])
    finally:
        fm.stop()
    plain, scraped = statistics.median(runs["plain"]), statistics.median(runs["scraped"])
    return {"runs": runs, "plain": plain, "scraped": scraped, "ratio": scraped / plain,
            "scrape_rounds": scrapes, "command": "ferrymq-perf amqp " + " ".join(args)}


def render(res: dict) -> str:
    m = res["m1"]
    lines = [
        BEGIN,
        "## Management API and metrics (`make bench`, `scripts/bench_management.py`)",
        "",
        f"Run {res['started']} at commit {res['commit']}"
        + (" (quick run)" if res["quick"] else "") + ".",
        "",
        f"**M1: {m['queues']:,} queues** with one message each, declared with pika "
        f"(ferrymq {m['ferrymq_declare_s']:.1f} s, RabbitMQ {m['rabbitmq_declare_s']:.1f} s); "
        f"each request {res['runs']} times over one keep-alive connection after one warm-up "
        "request. RabbitMQ 3.10's metrics are its rabbitmq_prometheus plugin on its own port.",
        "",
        "| request | ferrymq median | ferrymq p95 | RabbitMQ median | RabbitMQ p95 | RabbitMQ / ferrymq | body (ferrymq) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in PATHS:
        f, r = m["ferrymq"][name], m["rabbitmq"][name]
        lines.append(
            f"| `{PATHS[name]}` | {f['median_ms']:.1f} ms | {f['p95_ms']:.1f} ms | "
            f"{r['median_ms']:.1f} ms | {r['p95_ms']:.1f} ms | "
            f"{r['median_ms'] / f['median_ms']:.1f}x | {f['bytes'] / 1024:,.0f} KiB |")
    a = res["m2"]
    lines += [
        "",
        f"**M2: A1 with a scrape every second** (`{a['command']}`, alternating ABBA, "
        f"{len(a['runs']['plain'])} runs each; {a['scrape_rounds']} scrapes of `/metrics` and "
        "`/api/queues?page=1&page_size=100`): publish rate median "
        f"{a['plain']:,.0f} msg/s without, {a['scraped']:,.0f} msg/s with = "
        f"**{a['ratio'] * 100:.1f}%** (runs: without "
        + ", ".join(f"{x:,.0f}" for x in a["runs"]["plain"]) + "; with "
        + ", ".join(f"{x:,.0f}" for x in a["runs"]["scraped"]) + ").",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for name, limit in TARGETS.items():
        got = m["ferrymq"][name]["median_ms"]
        lines.append(f"| `{PATHS[name]}` with {m['queues']:,} queues < {limit:.0f} ms | "
                     f"{got:.1f} ms | {'**yes**' if got < limit else 'no'} |")
    met = a["ratio"] >= 0.98
    lines.append(f"| A1 with a scrape every second within 2% of A1 without | "
                 f"{a['ratio'] * 100:.1f}% | {'**yes**' if met else 'no'} |")
    lines += ["", END]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 queues, 10 requests, 1 round")
    ap.add_argument("--queues", type=int)
    ap.add_argument("--runs", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--no-doc", action="store_true")
    opts = ap.parse_args()
    queues = opts.queues or (1_000 if opts.quick else 10_000)
    runs = opts.runs or (10 if opts.quick else 30)
    rounds = opts.rounds or (1 if opts.quick else 3)
    bench_opts = argparse.Namespace(duration=2.0 if opts.quick else 10.0,
                                    warmup=0.5 if opts.quick else 2.0, quick=opts.quick,
                                    rounds=rounds, backlog=0, connections=0, dd_runs=0)
    if not FERRYMQ.exists():
        sys.exit(f"{FERRYMQ} missing: run `make bench` (it builds it)")
    bench = Bench(bench_opts)
    res = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "quick": opts.quick, "runs": runs,
           "commit": __import__("subprocess").run(
               ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
               capture_output=True, text=True).stdout.strip()}
    log(f"M1: {queues} queues")
    res["m1"] = m1(bench, queues, runs)
    log("M2: A1 with and without scrapes")
    res["m2"] = m2(bench, rounds)
    (bench.out / "management.json").write_text(json.dumps(res, indent=1))
    if not opts.no_doc:
        write_doc(DOC, render(res), BEGIN, END, before="\n## Profiles")
        log(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
