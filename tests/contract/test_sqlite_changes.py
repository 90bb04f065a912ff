"""SqliteStorage's change log: another process sharing the file learns which queues changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import ClaimRef, QueueSettings
from queuey.storage.sqlite import changes
from tests.contract.changes import another_process_learns_which_queues_changed
from tests.contract.test_sqlite import APP, messages, now_ms, opened, raw


@pytest.fixture
def gen(clock: FakeClock) -> IdGenerator:
    return IdGenerator(clock)


async def test_another_process_learns_which_queues_changed(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as writer, opened(tmp_path) as watcher:
        await another_process_learns_which_queues_changed(writer, watcher, clock, gen)


async def test_claims_and_acks_are_no_change_a_release_is(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "a", QueueSettings(), 0)
        await store.write_messages(queue, messages(gen, clock, 2))
        position, _ = await store.changes(None)
        first, second = await store.claim_messages(queue, [1], 2, now_ms(clock), 30_000, False)
        await store.ack_messages(queue, [ClaimRef(1, first.message.id, first.token)], 0)
        held = [ClaimRef(1, second.message.id, second.token)]
        await store.extend_claims(queue, held, now_ms(clock), 60_000)
        assert await store.changes(position) == (position, set())

        await store.extend_claims(queue, held, now_ms(clock), 0)  # released
        assert (await store.changes(position))[1] == {(APP, "a")}


async def test_one_row_per_queue_per_commit(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "a", QueueSettings(), 0)
        commits = store.commits
        await asyncio.gather(
            *(store.write_messages(queue, messages(gen, clock, 1)) for _ in range(20))
        )
        assert store.commits == commits + 1  # group commit: one transaction
        assert raw(tmp_path, "SELECT app, name FROM changes") == [(APP, "a")]


async def test_a_reader_behind_the_pruned_rows_cannot_tell(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "KEPT", 2)
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "a", QueueSettings(), 0)
        position, _ = await store.changes(None)
        for _ in range(5):
            await store.write_messages(queue, messages(gen, clock, 1))
        assert await store.sweep(now_ms(clock), 100) == 3  # the newest 2 rows are kept
        assert raw(tmp_path, "SELECT count(*) FROM changes") == [(2,)]
        newest, keys = await store.changes(position)
        assert keys is None  # the rows just after its position are gone
        await store.write_messages(queue, messages(gen, clock, 1))
        assert (await store.changes(newest))[1] == {(APP, "a")}


async def test_a_file_without_the_change_log_gets_it(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        await store.create_queue(APP, "a", QueueSettings(), 0)
    raw(tmp_path, "DROP TABLE changes")
    async with opened(tmp_path) as store:
        queue = await store.get_queue(APP, "a")
        assert queue is not None
        position, _ = await store.changes(None)
        await store.update_queue(APP, "a", QueueSettings(paused=True))
        assert (await store.changes(position))[1] == {(APP, "a")}
