"""The back-end registry: names and the original's aliases, factories that import their
back-end only when chosen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from queuey.config import StorageSettings
from queuey.storage import ALIASES, BACKENDS, backend_named, make_storage
from queuey.storage.memory import MemoryStorage
from queuey.storage.sqlite import SqliteStorage


def test_names_any_case_and_aliases_exactly() -> None:
    assert list(BACKENDS) == ["sqlite", "memory", "cassandra"]
    assert [backend_named(name) for name in ("sqlite", "Memory", "CASSANDRA")] == [
        "sqlite",
        "memory",
        "cassandra",
    ]
    assert backend_named("queuey.storage.memory.MemoryQueueBackend") == "memory"
    assert backend_named("queuey.storage.cassandra.CassandraMetadata") == "cassandra"
    assert backend_named("queuey.storage.memory.memoryqueuebackend") is None
    assert backend_named("redis") is None
    assert set(ALIASES.values()) <= set(BACKENDS)


def test_factories_build_their_back_end(tmp_path: Path) -> None:
    assert isinstance(make_storage(StorageSettings(backend="memory")), MemoryStorage)
    sqlite = make_storage(StorageSettings(backend="sqlite", path=tmp_path, durability="full"))
    assert isinstance(sqlite, SqliteStorage)
    with pytest.raises(ValueError, match="Cassandra"):
        make_storage(StorageSettings(backend="cassandra"))  # no [storage] Cassandra settings


def test_the_cassandra_driver_is_imported_only_when_chosen(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from queuey.config import StorageSettings\n"
        "from queuey.main import build_app\n"
        "from queuey.config import Settings\n"
        f"build_app(Settings(storage=StorageSettings(path=Path({str(tmp_path)!r}))))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cassandra'"
        " or m == 'queuey.storage.cassandra.store'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
