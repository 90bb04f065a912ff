"""Migration between stores: sqlite -> cassandra -> sqlite, each copy interrupted by a failure
in the middle and resumed from its checkpoint, then verified; the verification finds a
difference made on purpose."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.core.models import Message, Queue
from queuey.storage.base import Storage
from queuey.storage.cassandra import CassandraStorage
from queuey.transfer import migrate
from tests import cassandra
from tests.conftest import make_storage
from tests.transfer.conftest import contents, fill


class FailingStore:
    """A store whose writes fail after ``writes`` of them succeeded (a target that goes away
    in the middle of a migration)."""

    def __init__(self, store: Storage, writes: int) -> None:
        self._store = store
        self.left = writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False, fresh: bool = False
    ) -> None:
        if self.left <= 0:
            raise StorageUnavailable("Back-end storage unavailable: gone for the test")
        self.left -= 1
        await self._store.write_messages(queue, messages, replace, fresh)


@pytest.fixture
async def cassandra_store() -> AsyncIterator[CassandraStorage]:
    async for store in cassandra.fresh_store():
        yield store


async def sqlite_store(directory: Path) -> Storage:
    store = make_storage("sqlite", directory)
    await store.open()
    return store


async def interrupted_then_resumed(
    source: Storage, target: Storage, checkpoint_path: Path, clock: FakeClock, total: int
) -> migrate.Checkpoint:
    """Migrate with a target failing after a few writes, then resume from the checkpoint."""
    checkpoint = migrate.Checkpoint(checkpoint_path, "from", "to")
    failing = cast(Storage, FailingStore(target, writes=12))
    with pytest.raises(StorageUnavailable, match="gone for the test"):
        await migrate.migrate(source, failing, checkpoint, clock, workers=4)
    saved = orjson.loads(checkpoint_path.read_bytes())
    assert not saved["finished"] and 0 < saved["copied"] < total
    assert saved["queues"] or saved["after"]  # how far it got
    resumed = migrate.Checkpoint.load(checkpoint_path, "from", "to")
    copied_before = resumed.copied
    await migrate.migrate(source, target, resumed, clock, workers=4)
    assert resumed.finished
    # The second run went on from where the first stopped (give or take the queues that were
    # being copied side by side), not from the start.
    assert resumed.copied - copied_before < total
    assert resumed.copied >= total
    return resumed


async def test_sqlite_to_cassandra_and_back_interrupted_and_resumed_copies_everything_once(
    tmp_path: Path, clock: FakeClock, cassandra_store: CassandraStorage
) -> None:
    first = await sqlite_store(tmp_path / "first")
    second = await sqlite_store(tmp_path / "second")
    try:
        filled = await fill(first, clock, ("app", "other", "third"), queues=6, per_queue=50)
        await interrupted_then_resumed(
            first, cassandra_store, tmp_path / "one.checkpoint", clock, filled.messages
        )
        there = await migrate.verify(first, cassandra_store, clock)
        assert there.ok, there.mismatches
        assert (there.source.queues, there.source.messages) == (18, filled.messages)
        assert there.target == there.source
        await interrupted_then_resumed(
            cassandra_store, second, tmp_path / "two.checkpoint", clock, filled.messages
        )
        back = await migrate.verify(cassandra_store, second, clock)
        assert back.ok, back.mismatches
        assert back.source.checksum == there.source.checksum
        assert await contents(second, clock) == await contents(first, clock)
    finally:
        await first.close()
        await second.close()


async def test_verification_reports_what_differs(tmp_path: Path, clock: FakeClock) -> None:
    source = await sqlite_store(tmp_path / "source")
    target = await sqlite_store(tmp_path / "target")
    try:
        await fill(source, clock, ("app",), queues=3, per_queue=10)
        await migrate.migrate(source, target, migrate.Checkpoint(None, "a", "b"), clock)
        assert (await migrate.verify(source, target, clock)).ok
        queue = await target.get_queue("app", "queue-001")
        assert queue is not None
        [gone, *_] = await target.scan_messages(queue, 1, None, 1, 1)
        await target.delete_messages(queue, [(1, gone.id)])
        await target.create_queue("app", "extra", queue.settings, 1.0)
        await target.delete_queue("app", "queue-002")
        result = await migrate.verify(source, target, clock)
        assert not result.ok
        assert result.mismatches == [
            "app/queue-001: 10 messages on the source, 9 on the target",
            "app/queue-002: missing on the target",
            "the target has 1 queues the source does not have",
        ]
    finally:
        await source.close()
        await target.close()


def test_a_checkpoint_of_other_stores_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint"
    migrate.Checkpoint(path, "sqlite:/a", "cassandra://b").save()
    assert path.stat().st_mode & 0o777 == 0o600
    assert migrate.Checkpoint.load(path, "sqlite:/a", "cassandra://b").source == "sqlite:/a"
    with pytest.raises(migrate.CheckpointError, match="not from sqlite:/c"):
        migrate.Checkpoint.load(path, "sqlite:/c", "cassandra://b")
    path.write_text("{}")
    with pytest.raises(migrate.CheckpointError, match="not a migration checkpoint"):
        migrate.Checkpoint.load(path, "sqlite:/a", "cassandra://b")
