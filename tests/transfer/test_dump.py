"""Export and import on a store (memory and sqlite): round trips keep every queue's settings and
every unexpired message exactly (ids, times, bodies, states), and importing again stores
nothing twice."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.limits import Limits
from queuey.core.models import Message, QueueSettings
from queuey.storage.base import Storage
from queuey.transfer import dump
from tests.conftest import make_storage
from tests.transfer.conftest import contents, fill, now_ms

BACKENDS = ["memory", "sqlite"]


async def opened(backend: str, directory: Path) -> Storage:
    store = make_storage(backend, directory)
    await store.open()
    return store


async def export_of(store: Storage, app: str, clock: FakeClock) -> bytes:
    out = io.BytesIO()
    await dump.export_app(store, app, out, clock)
    return out.getvalue()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_export_imported_into_an_empty_store_gives_the_same_queues_and_messages(
    backend: str, tmp_path: Path, clock: FakeClock
) -> None:
    source, target = await opened(backend, tmp_path / "a"), await opened(backend, tmp_path / "b")
    try:
        filled = await fill(source, clock, ("app", "other"), queues=5, per_queue=40)
        exported = await export_of(source, "app", clock)
        lines = exported.splitlines()
        header = orjson.loads(lines[0])
        assert (header["format"], header["app"]) == ("queuey-export", "app")
        assert sum(b'"kind":"queue"' in line for line in lines) == 5
        assert sum(b'"kind":"message"' in line for line in lines) == filled.messages // 2
        clock.advance(1)
        done = await dump.import_lines(target, io.BytesIO(exported), clock, Limits())
        assert (done.queues_created, done.queues_found, done.messages) == (5, 0, 200)
        mine = {k: v for k, v in (await contents(source, clock)).items() if k[0] == "app"}
        assert await contents(target, clock) == mine
        # Again: every queue is found, every message is stored once.
        again = await dump.import_lines(target, io.BytesIO(exported), clock, Limits())
        assert (again.queues_created, again.queues_found) == (0, 5)
        assert await contents(target, clock) == mine
        assert await export_of(target, "app", clock) == await export_of(source, "app", clock)
    finally:
        await source.close()
        await target.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_import_goes_into_the_application_asked_for_and_leaves_out_expired_messages(
    backend: str, tmp_path: Path, clock: FakeClock
) -> None:
    source, target = await opened(backend, tmp_path / "a"), await opened(backend, tmp_path / "b")
    try:
        await fill(source, clock, ("app",), queues=1, per_queue=10)
        exported = await export_of(source, "app", clock)
        clock.advance(3600 + 5)  # past every message's expiry (an hour and a few ms)
        done = await dump.import_lines(target, io.BytesIO(exported), clock, Limits(), "moved")
        assert (done.queues_created, done.messages, done.expired) == (1, 0, 10)
        assert [q.app for _, q in await target.scan_queues(None, 10)] == ["moved"]
    finally:
        await source.close()
        await target.close()


async def test_a_body_that_is_not_valid_unicode_comes_back_exactly(clock: FakeClock) -> None:
    source, target = await opened("memory", Path()), await opened("memory", Path())
    queue = await source.create_queue("app", "q", QueueSettings(), 1.0)
    message_id, ticks = IdGenerator(clock).next()
    body = "lone \udcff surrogate \ud800"
    stored = Message(message_id, ticks, 1, body, "application/octet-stream", now_ms(clock) + 1000)
    await source.write_messages(queue, [stored])
    exported = await export_of(source, "app", clock)
    assert b"body_b64" in exported
    await dump.import_lines(target, io.BytesIO(exported), clock, Limits())
    copy = await target.get_queue("app", "q")
    assert copy is not None
    [found] = await target.scan_messages(copy, 1, None, 10, now_ms(clock))
    assert (found.id, found.ticks, found.body) == (message_id, ticks, body)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"kind": "queue", "name": "bad name!", "created": 1, "settings": {}}', "queue"),
        (b'{"kind": "queue", "name": "q", "created": 1, "settings": {"partitions": 0}}', "part"),
        (b'{"kind": "message", "queue": "q", "id": "nope"}', "is not a message id"),
        (b'{"kind": "thing"}', "unknown kind"),
    ],
)
async def test_a_line_that_is_not_a_record_stops_the_import_with_its_number(
    line: bytes, reason: str, clock: FakeClock
) -> None:
    store = await opened("memory", Path())
    header = b'{"format": "queuey-export", "version": 1, "app": "a", "exported_ms": 0}\n'
    with pytest.raises(dump.ImportFailed, match=reason) as failed:
        await dump.import_lines(store, io.BytesIO(header + line + b"\n"), clock, Limits())
    assert failed.value.line == 2


async def test_an_import_needs_the_header_first(clock: FakeClock) -> None:
    store = await opened("memory", Path())
    line = b'{"kind": "queue", "name": "q", "created": 1, "settings": {}}\n'
    with pytest.raises(dump.ImportFailed, match="header"):
        await dump.import_lines(store, io.BytesIO(line), clock, Limits())
    with pytest.raises(dump.ImportFailed, match="no export header"):
        await dump.import_lines(store, io.BytesIO(b""), clock, Limits())
