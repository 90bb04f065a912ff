"""Storage trouble on a real server on SQLite: the disk filling up, or the database file
becoming read-only, turns writes into 503 ``storage`` with Retry-After, loses nothing that was
acknowledged, and the server takes writes again by itself once the condition clears.

The conditions are real, and stop root too (the tests run as root): a small tmpfs mounted on
the data directory and filled up, and the immutable attribute (``chattr +i``) on the database
and its WAL. Where the machine does not allow them (no privilege to mount, a file system
without the attribute) the test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUTH, Server, start_server, write_config

pytestmark = pytest.mark.e2e

BODY = "y" * 100_000


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def small_disk(directory: Path, size: str) -> Iterator[None]:
    directory.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        run("umount", "-l", str(directory))


class Writer:
    """Posts and remembers every acknowledged message; asserts every refusal is a 503."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
        self.acknowledged: dict[str, str] = {}
        self.refused = 0

    def post(self, body: str) -> int:
        response = self.http.post("/v1/queuey/q", content=body.encode())
        if response.status_code == 201:
            self.acknowledged[response.json()["messages"][0]["key"]] = body
        else:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert list(response.json()["error_msg"]) == ["storage"]
            self.refused += 1
        return response.status_code

    def post_until_refused(self, most: int = 200) -> None:
        for i in range(most):
            if self.post(f"during-{i}-{BODY}") == 503:
                return
        raise AssertionError(f"{most} posts and no 503")

    def recovers(self, seconds: float = 10) -> None:
        """Writes are taken again without a restart (within a few retries)."""
        deadline = time.monotonic() + seconds
        i = 0
        while self.post(f"after-{i}") != 201:
            assert time.monotonic() < deadline, "the server did not recover by itself"
            time.sleep(0.2)
            i += 1

    def check_everything_kept(self, url: str) -> None:
        read = httpx.get(f"{url}/v1/queuey/q", params={"limit": "1000"}, headers=AUTH)
        stored = {m["message_id"]: m["body"] for m in read.json()["messages"]}
        assert {k: stored.get(k) for k in self.acknowledged} == self.acknowledged
        assert len(stored) == len(self.acknowledged)  # nothing refused was stored


def scenario(tmp_path: Path, durability: str, trouble: Callable[[Path], None],
             clear: Callable[[Path], None]) -> None:  # fmt: skip
    """Post, cause ``trouble``, post until refused, ``clear`` it, check recovery; then
    restart and check that everything acknowledged is there."""
    config = write_config(tmp_path, extra=f"durability = {durability}\n")
    server = start_server(tmp_path, ["--config", str(config)])
    try:
        created = httpx.post(f"{server.url}/v1/queuey", headers=AUTH, data={"queue_name": "q"})
        assert created.status_code == 201
        writer = Writer(server)
        with writer.http:
            for i in range(5):
                assert writer.post(f"before-{i}") == 201
            trouble(tmp_path / "data")
            try:
                writer.post_until_refused()
                assert writer.post("still refused") == 503
                writer.check_everything_kept(server.url)  # reads go on meanwhile
            finally:
                clear(tmp_path / "data")
            writer.recovers()
            for i in range(5):
                assert writer.post(f"later-{i}") == 201
            writer.check_everything_kept(server.url)
    finally:
        server.stop()
    assert "Traceback" not in server.output()
    restarted = start_server(tmp_path, ["--config", str(config)])
    try:
        writer.check_everything_kept(restarted.url)
    finally:
        restarted.stop()


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_a_full_disk_is_503_loses_nothing_and_the_server_recovers(
    tmp_path: Path, durability: str
) -> None:
    filler = tmp_path / "data" / "filler"

    def fill(data: Path) -> None:
        with contextlib.suppress(OSError), filler.open("wb") as out:
            while True:
                out.write(b"\0" * 65536)
                out.flush()

    with small_disk(tmp_path / "data", "32m"):
        scenario(tmp_path, durability, fill, lambda data: filler.unlink())


def set_immutable(paths: list[Path], on: bool) -> None:
    for path in paths:
        result = run("chattr", "+i" if on else "-i", str(path))
        if result.returncode != 0:
            pytest.skip(f"cannot make {path.name} immutable here: {result.stderr.strip()}")


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_a_read_only_database_is_503_loses_nothing_and_the_server_recovers(
    tmp_path: Path, durability: str
) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("no chattr command")

    def files(data: Path) -> list[Path]:
        return [data / "queuey.db", data / "queuey.db-wal"]

    try:
        scenario(tmp_path, durability, lambda data: set_immutable(files(data), True),
                 lambda data: set_immutable(files(data), False))  # fmt: skip
    finally:
        for path in files(tmp_path / "data"):
            run("chattr", "-i", str(path))  # so that the temporary directory can be removed
