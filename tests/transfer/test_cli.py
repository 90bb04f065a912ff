"""``queuey export``, ``import``, ``migrate`` and ``backup`` through the CLI's entry point: what
they print and their exit codes."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from queuey.cli import main
from queuey.cli.common import ExitCode
from queuey.core.clock import FakeClock
from queuey.storage.base import Storage
from tests.conftest import make_storage
from tests.e2e.conftest import KEY, write_config
from tests.transfer.conftest import fill


@dataclass
class Result:
    code: int
    out: bytes
    err: str


Run = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]) -> Run:
    """``queuey ARGS`` through ``queuey.cli.main`` with ``stdin`` as its standard input."""
    monkeypatch.delenv("QUEUEY_CONFIG", raising=False)

    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            code = main(argv)
        except SystemExit as exit:
            code = int(exit.code or 0)
        captured = capfdbinary.readouterr()
        return Result(code, captured.out, captured.err.decode())

    return run


def sqlite_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_config(directory)


def memory_config(directory: Path) -> Path:
    config = directory / "memory.ini"
    config.write_text("[storage]\nbackend = memory\n")
    return config


def filled(directory: Path, apps: tuple[str, ...], queues: int, per_queue: int) -> Path:
    """A SQLite store's config, the store filled with :func:`fill`'s queues and messages."""
    config = sqlite_config(directory)

    async def work() -> None:
        store: Storage = make_storage("sqlite", directory / "data")
        await store.open()
        try:
            await fill(store, FakeClock(time.time()), apps, queues, per_queue)
        finally:
            await store.close()

    asyncio.run(work())
    return config


def test_export_then_import_into_another_store_twice_stores_everything_once(
    cli: Run, tmp_path: Path
) -> None:
    source = filled(tmp_path / "source", ("queuey", "other"), queues=3, per_queue=20)
    target = sqlite_config(tmp_path / "target")
    exported = cli("export", "--config", str(source), "--app", "queuey")
    assert exported.code == 0, exported.err
    assert "exported 3 queues, 60 messages of queuey" in exported.err
    dump = tmp_path / "queuey.ndjson"
    dump.write_bytes(exported.out)
    first = cli("import", str(dump), "--config", str(target))
    assert first.code == 0, first.err
    assert "imported 3 new queues (0 existed), 60 messages" in first.err
    again = cli("import", "--config", str(target), stdin=exported.out)
    assert again.code == 0 and "imported 0 new queues (3 existed), 60 messages" in again.err
    to_file = tmp_path / "copy.ndjson"
    assert cli("export", "--config", str(target), "-o", str(to_file)).code == 0
    mine, theirs = exported.out.splitlines(), to_file.read_bytes().splitlines()
    assert len(mine) == len(theirs) == 1 + 3 + 60
    # The same records but the header's time and the time left to live.
    assert [without_times(line) for line in mine] == [without_times(line) for line in theirs]


def without_times(line: bytes) -> dict[str, object]:
    record: dict[str, object] = orjson.loads(line)
    return {k: v for k, v in record.items() if k not in ("exported_ms", "ttl_ms")}


def test_export_and_import_exit_codes(cli: Run, tmp_path: Path) -> None:
    config = sqlite_config(tmp_path / "store")
    memory = cli("export", "--config", str(memory_config(tmp_path)))
    assert memory.code == ExitCode.USAGE and "memory back-end" in memory.err
    missing = cli("export", "--config", str(tmp_path / "nope.ini"))
    assert missing.code == ExitCode.USAGE and "configuration error" in missing.err
    unwritable = cli("export", "--config", str(config), "-o", str(tmp_path / "no" / "file"))
    assert unwritable.code == ExitCode.USAGE and "cannot write" in unwritable.err
    unreadable = cli("import", str(tmp_path / "none.ndjson"), "--config", str(config))
    assert unreadable.code == ExitCode.USAGE and "cannot read" in unreadable.err
    header = b'{"format": "queuey-export", "version": 1, "app": "a", "exported_ms": 0}\n'
    bad = cli("import", "--config", str(config), stdin=header + b"[1, 2]\n")
    assert bad.code == ExitCode.USAGE and "line 2: not a JSON object" in bad.err
    several = tmp_path / "several.ini"
    several.write_text(f"[application_keys]\na = {KEY}\nb = {KEY}x\n")
    ambiguous = cli("export", "--config", str(several))
    assert ambiguous.code == ExitCode.USAGE and "--app" in ambiguous.err


def test_migrate_copies_verifies_and_finds_a_difference(cli: Run, tmp_path: Path) -> None:
    source = filled(tmp_path / "source", ("queuey", "other"), queues=4, per_queue=25)
    target = sqlite_config(tmp_path / "target")
    checkpoint = tmp_path / "migrate.checkpoint"
    argv = ("migrate", "--from", str(source), "--to", str(target), "--checkpoint", str(checkpoint))
    copied = cli(*argv, "--json")
    assert copied.code == 0, copied.err
    summary = orjson.loads(copied.out)
    assert (summary["queues"], summary["copied"], summary["mismatches"]) == (8, 200, [])
    assert summary["verified"]["source"] == summary["verified"]["target"]
    assert summary["verified"]["source"]["messages"] == 200
    # Finished: a new run only verifies.
    again = cli(*argv)
    assert again.code == 0, again.err
    assert b"says the copy is finished: verifying only" in again.out
    assert b"verified: both sides hold the same queues and messages" in again.out
    imported = cli("import", "--config", str(target), "--app", "queuey", stdin=(
        b'{"format": "queuey-export", "version": 1, "app": "queuey", "exported_ms": 0}\n'
        b'{"kind": "queue", "name": "only-here", "created": 1, "settings": {}}\n'
    ))  # fmt: skip
    assert imported.code == 0
    differs = cli(*argv)
    assert differs.code == ExitCode.MISMATCH
    assert b"mismatch: the target has 1 queues the source does not have" in differs.out


def test_migrate_exit_codes(cli: Run, tmp_path: Path) -> None:
    config = sqlite_config(tmp_path / "one")
    other = sqlite_config(tmp_path / "two")
    same = cli("migrate", "--from", str(config), "--to", str(config))
    assert same.code == ExitCode.USAGE and "the same store" in same.err
    memory = cli("migrate", "--from", str(memory_config(tmp_path)), "--to", str(config))
    assert memory.code == ExitCode.USAGE and "memory back-end" in memory.err
    checkpoint = tmp_path / "checkpoint"
    checkpoint.write_text('{"source": "x", "target": "y", "after": null, "queues": {},'
                          ' "copied": 0, "finished": false}')  # fmt: skip
    foreign = cli("migrate", "--from", str(config), "--to", str(other), "--checkpoint",
                  str(checkpoint))  # fmt: skip
    assert foreign.code == ExitCode.USAGE and "checkpoint of a migration from x to y" in foreign.err
    usage = cli("migrate", "--from", str(config))
    assert usage.code == ExitCode.USAGE


def test_backup_refuses_stores_it_does_not_apply_to(cli: Run, tmp_path: Path) -> None:
    memory = cli("backup", str(tmp_path / "copy"), "--config", str(memory_config(tmp_path)))
    assert memory.code == ExitCode.USAGE
    assert "copies the sqlite back-end's store; this config uses memory" in memory.err
    cassandra = tmp_path / "cassandra.ini"
    cassandra.write_text("[storage]\nbackend = cassandra\n")
    refused = cli("backup", str(tmp_path / "copy"), "--config", str(cassandra))
    assert refused.code == ExitCode.USAGE and "nodetool snapshot" in refused.err
    empty = cli("backup", str(tmp_path / "copy"), "--config", str(sqlite_config(tmp_path / "s")))
    assert empty.code == ExitCode.USAGE and "no SQLite store there" in empty.err
    assert not (tmp_path / "copy" / "queuey.db").exists()
