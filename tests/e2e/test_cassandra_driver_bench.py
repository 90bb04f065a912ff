"""The Cassandra bench's driver-only baselines (``bench/cassandra_driver.py``): the batch and
read loops run against the test node and report what they did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import cassandra

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "cassandra_driver.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    hosts = ",".join(f"{host}:{port}" for host, port in cassandra.hosts())
    command = [sys.executable, str(SCRIPT), "--hosts", hosts, "--keyspace"]
    command += [f"{cassandra.PREFIX}_driver", "--duration", "1", "--in-flight", "4", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def result(*args: str) -> dict[str, Any]:
    done = run(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["requests"] > 0 and got["errors"] == 0, got
    assert got["rows_s"] == pytest.approx(
        got["requests"] * got["rows_per_request"] / got["seconds"], rel=0.01
    )
    return got


def test_the_batch_loop_counts_rows() -> None:
    assert result("--batch", "10")["rows_per_request"] == 10


def test_the_read_loop_reads_full_pages() -> None:
    # A read answered with fewer rows than asked counts as an error (checked in result()):
    # every random position has at least --read rows after it.
    assert result("--read", "10", "--prefill", "200")["rows_per_request"] == 10


def test_one_mode_at_a_time() -> None:
    done = run("--batch", "10", "--read", "10")
    assert done.returncode == 2
    assert "choose one of --lwt, --batch and --read" in done.stderr
