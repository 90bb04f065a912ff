"""``queuey backup`` of a running server's SQLite store while messages are being posted: the
copy holds every message acknowledged before the backup began, is owner-only, and a server
started on it serves them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from queuey.core.models import Queue
from queuey.storage.sqlite import SqliteStorage
from tests.client.servers import running_server
from tests.e2e.conftest import AUTH, start_server

pytestmark = pytest.mark.e2e

QUEUEY = str(Path(sys.executable).with_name("queuey"))


class Poster:
    """Posts batches to a queue until stopped; ``acknowledged`` holds the keys of every batch
    the server answered 201 to, in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poster:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(headers=AUTH, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                batch = {"messages": [{"body": f"message {n + i}"} for i in range(50)]}
                answer = client.post(self.url, json=batch)
                assert answer.status_code == 201, answer.text
                self.acknowledged += [m["key"] for m in answer.json()["messages"]]
                n += 50


def test_a_backup_under_load_holds_every_message_acknowledged_before_it_began(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server:
        base = f"{server.url}/v1/queuey"
        created = httpx.post(base, data={"queue_name": "busy"}, headers=AUTH)
        assert created.status_code == 201
        config = tmp_path / "queuey.ini"
        with Poster(f"{base}/busy") as poster:
            while len(poster.acknowledged) < 5000:
                time.sleep(0.05)
            before = list(poster.acknowledged)
            backup = subprocess.run(
                [QUEUEY, "backup", str(tmp_path / "copy"), "--config", str(config)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            during = len(poster.acknowledged) - len(before)
        assert backup.returncode == 0, backup.stderr
        assert during > 0  # posts went on while the backup ran
        assert f"into {tmp_path / 'copy' / 'queuey.db'}" in backup.stdout
    copy = tmp_path / "copy"
    assert copy.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in copy.iterdir()) == ["queuey.db", "token_secret"]
    assert {p.stat().st_mode & 0o777 for p in copy.iterdir()} == {0o600}
    found = asyncio.run(stored_ids(copy))
    assert set(before) <= found
    # Restored: a server on the copy serves those messages.
    restored = tmp_path / "restored.ini"
    restored.write_text(config.read_text().replace(str(tmp_path / "data"), str(copy)))
    again = start_server(tmp_path, ["--config", str(restored)])
    try:
        answer = httpx.get(f"{again.url}/v1/queuey/busy/{before[0]},{before[-1]}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert [m["message_id"] for m in answer.json()["messages"]] == [before[0], before[-1]]
    finally:
        again.stop()


async def stored_ids(directory: Path) -> set[str]:
    store = SqliteStorage(directory)
    await store.open()
    try:
        queue: Queue | None = await store.get_queue("queuey", "busy")
        assert queue is not None
        found: set[str] = set()
        after: tuple[int, str] | None = None
        while True:
            page = await store.scan_messages(queue, 1, after, 1000, time.time_ns() // 1_000_000)
            found.update(m.id for m in page)
            if len(page) < 1000:
                return found
            after = (page[-1].ticks, page[-1].id)
    finally:
        await store.close()


def test_a_backup_does_not_overwrite_an_earlier_one(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        assert httpx.post(f"{server.url}/v1/queuey", data={"queue_name": "q"}, headers=AUTH)
        argv = [QUEUEY, "backup", str(tmp_path / "copy"), "--config", str(tmp_path / "queuey.ini")]
        first = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "exists: back up into a new directory" in second.stderr
