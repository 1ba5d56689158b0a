"""A real Celery worker (`celery -A tasks worker`) in a subprocess, for the tests that run
Celery apps against ferrymq (tests/amqp/test_celery_kombu.py, tests/interop/test_fanout.py)."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


class Worker:
    """`celery -A tasks worker` in `directory` consuming `queue`; `ready` is set once it logs
    that it is ready."""

    def __init__(self, directory: Path, queue: str):
        env = {**os.environ, "PYTHONPATH": str(directory)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-Q", queue, "--loglevel=INFO"],
            cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines = []
        self.ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if " ready." in line:
                self.ready.set()

    def tail(self):
        return "\n".join(self.lines[-60:])

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM: warm shutdown; its exit code. Once a task has run, Celery 5's solo pool
        takes ~10 s to exit on SIGTERM or SIGQUIT (against RabbitMQ too)."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("celery worker did not stop:\n" + self.tail())
