"""The database's files are the owner's alone: they hold every application's messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from queuey.core.models import QueueSettings
from queuey.storage.sqlite import SqliteStorage

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")

FILES = ("queuey.db", "queuey.db-wal", "queuey.db-shm")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_directory_is_0700_and_the_database_files_0600(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    storage = SqliteStorage(directory)
    await storage.open()
    try:
        await storage.create_queue("queuey", "q", QueueSettings(), 0.0)
        assert mode(directory) == 0o700
        assert {name: mode(directory / name) for name in FILES} == dict.fromkeys(FILES, 0o600)
    finally:
        await storage.close()


async def test_an_existing_database_readable_by_others_is_made_private(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path)
    await storage.open()
    await storage.create_queue("queuey", "q", QueueSettings(), 0.0)
    await storage.close()
    (tmp_path / "queuey.db").chmod(0o644)

    storage = SqliteStorage(tmp_path)
    await storage.open()
    try:
        assert {name: mode(tmp_path / name) for name in FILES} == dict.fromkeys(FILES, 0o600)
        assert await storage.get_queue("queuey", "q") is not None
    finally:
        await storage.close()
