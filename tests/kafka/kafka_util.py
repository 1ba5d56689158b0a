"""Helpers shared by the Kafka integration tests (real clients against the real binary)."""

import shutil
import subprocess
import time

import pytest

from conftest import Broker, wait_until  # noqa: F401 (re-exported)

# Kafka's default makes the first rebalance of every group wait 3 s for more members; the
# suite runs many short-lived groups, so it turns that off unless a test measures it.
FAST_GROUPS = {"FERRYMQ_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0"}


def module_broker(tmp_path_factory, name="kafka", env=None):
    """A ferrymq for one test module (tests use their own topic and group names)."""
    b = Broker(tmp_path_factory.mktemp(name) / "data", env={**FAST_GROUPS, **(env or {})}).start()
    return b


KCAT = shutil.which("kcat") or "/usr/bin/kcat"


def kcat(broker, *args, input=None, timeout=20):
    """Runs Debian's kcat (librdkafka 2.0.2) against `broker`; returns stdout."""
    proc = subprocess.run(
        [KCAT, "-b", broker.bootstrap, *args],
        input=input, capture_output=True, timeout=timeout, text=input is None or isinstance(input, str),
    )
    assert proc.returncode == 0, f"kcat {args} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout




def require_kcat():
    if not shutil.which("kcat") and not shutil.which(KCAT):
        pytest.skip("kcat is not installed (make test installs it)")
