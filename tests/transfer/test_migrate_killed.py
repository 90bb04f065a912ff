"""``queuey migrate`` from SQLite to Cassandra killed in the middle (SIGKILL: no chance to save
anything more), then run again: it goes on from its checkpoint and the verification passes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from queuey.transfer.migrate import QUEUE_PAGE
from tests import cassandra
from tests.e2e.conftest import write_cassandra_config
from tests.transfer.test_cli import filled

pytestmark = pytest.mark.e2e

QUEUEY = str(Path(sys.executable).with_name("queuey"))
# More queues than one page of the copy (QUEUE_PAGE): the checkpoint is saved at the end of the
# first page however fast the copy goes, with a whole page still to copy.
QUEUES, PER_QUEUE = 2 * QUEUE_PAGE + 8, 20


async def emptied_cassandra() -> None:
    async for _ in cassandra.fresh_store():  # truncates the test keyspaces
        pass


def test_a_killed_migration_resumes_from_its_checkpoint_and_verifies(tmp_path: Path) -> None:
    cassandra.hosts()  # skips without the test node
    asyncio.run(emptied_cassandra())
    source = filled(tmp_path / "source", ("queuey",), QUEUES, PER_QUEUE)
    (tmp_path / "target").mkdir()
    target = write_cassandra_config(tmp_path / "target")
    checkpoint = tmp_path / "migrate.checkpoint"
    argv = [QUEUEY, "migrate", "--from", str(source), "--to", str(target),
            "--checkpoint", str(checkpoint), "--workers", "1", "--json"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        saved: dict[str, object] = {}
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.exists():
                saved = orjson.loads(checkpoint.read_bytes())
                if saved["copied"]:
                    break
            time.sleep(0.02)
        assert process.poll() is None, "the migration ended before it could be killed"
        process.kill()
    finally:
        process.wait(timeout=30)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    assert not saved["finished"]
    total = QUEUES * PER_QUEUE
    assert 0 < int(str(saved["copied"])) < total
    resumed = subprocess.run(argv, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert b"resuming from" in resumed.stderr
    summary = orjson.loads(resumed.stdout)
    assert 0 < summary["copied"] < total  # the rest, not everything again
    assert summary["mismatches"] == []
    verified = summary["verified"]
    assert verified["source"] == verified["target"]
    assert verified["target"]["messages"] == total
    assert verified["target"]["queues"] == QUEUES
