"""Concurrent posts to one bucket of a queue share Cassandra requests; each keeps its own
outcome (a post to an idle queue goes at once, as one request: see test_cassandra_changes)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.core.ids import IdGenerator
from queuey.core.models import Message
from queuey.storage.cassandra import CassandraStorage, coalescer
from tests import cassandra as node
from tests.cassandra import messages, work_queue

store = pytest.fixture(node.fresh_store, name="store")
gen = pytest.fixture(node.ids, name="gen")


async def stored_ids(store: CassandraStorage, clock: FakeClock) -> list[str]:
    return [m.id for m in await node.stored(store, clock)]


async def test_posts_that_come_while_requests_are_out_go_together(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)  # queue copy made
    sent = node.count_requests(store, monkeypatch)
    posted = [[m] for m in messages(gen, clock, 40)]
    await asyncio.gather(*(store.write_messages(queue, m, fresh=True) for m in posted))
    writes = [what for what in sent if what != "ch_insert"]
    # The first IN_FLIGHT go alone; the others wait for them and go together.
    assert coalescer.IN_FLIGHT < len(writes) <= 2 * coalescer.IN_FLIGHT
    assert set(await stored_ids(store, clock)) >= {m[0].id for m in posted}
    assert store.messages._coalescer._lanes == {}  # nothing kept once idle


async def test_a_shared_request_holds_at_most_most_rows_statements(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coalescer, "MOST_ROWS", 10)
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)
    sent = node.count_requests(store, monkeypatch)
    posted = [messages(gen, clock, 4) for _ in range(12)]  # 4 rows (5 with an index row)
    await asyncio.gather(*(store.write_messages(queue, m, fresh=True) for m in posted))
    writes = [what for what in sent if what != "ch_insert"]
    # 2 posts alone, then the 10 others 2 per request (10 statements at most).
    assert len(writes) == coalescer.IN_FLIGHT + 5
    assert set(await stored_ids(store, clock)) >= {m.id for post in posted for m in post}


async def test_writes_bigger_together_than_most_bytes_go_one_by_one(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coalescer, "MOST_BYTES", 600)  # a message's row counts ~300 bytes
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)
    sent = node.count_requests(store, monkeypatch)
    posted = [messages(gen, clock, 2) for _ in range(8)] + [messages(gen, clock, 8)]
    await asyncio.gather(*(store.write_messages(queue, m, fresh=True) for m in posted))
    writes = [what for what in sent if what != "ch_insert"]
    # 2 posts alone, then the 6 others of 2 messages 1 per request; the one over the limit
    # by itself goes alone too.
    assert len(writes) == 9
    assert set(await stored_ids(store, clock)) >= {m.id for post in posted for m in post}


async def test_a_post_with_a_value_the_driver_refuses_fails_alone(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)
    posted = [[m] for m in messages(gen, clock, 10)]
    bad = posted[5][0]
    posted[5] = [Message(bad.id, bad.ticks, 1, 12, "text/plain", bad.expires_ms)]  # type: ignore[arg-type]
    outcomes = await asyncio.gather(
        *(store.write_messages(queue, m, fresh=True) for m in posted), return_exceptions=True
    )
    assert [type(o) for o in outcomes] == [type(None)] * 5 + [StorageUnavailable] + [type(None)] * 4
    assert "'int' object" in str(outcomes[5])  # the driver's own words
    ids = set(await stored_ids(store, clock))
    assert bad.id not in ids
    assert ids >= {m[0].id for i, m in enumerate(posted) if i != 5}


async def test_a_shared_request_that_fails_fails_each_post_it_carried(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)

    batch_of = store.session.batch_of

    def no_node(route: Any, rows: list[Any], *args: Any, **kwargs: Any) -> Any:
        if len(rows) > 2:  # a shared request (a post alone has a row, and an index row)
            raise ConnectionError("no node answers")
        return batch_of(route, rows, *args, **kwargs)

    monkeypatch.setattr(store.session, "batch_of", no_node)
    posted = [[m] for m in messages(gen, clock, 8)]
    outcomes = await asyncio.gather(
        *(store.write_messages(queue, m, fresh=True) for m in posted), return_exceptions=True
    )
    alone, carried = outcomes[: coalescer.IN_FLIGHT], outcomes[coalescer.IN_FLIGHT :]
    assert alone == [None] * coalescer.IN_FLIGHT
    assert all(isinstance(o, StorageUnavailable) for o in carried)
    assert all("no node answers" in str(o) for o in carried)
    assert len({id(o) for o in carried}) == len(carried)  # each post raises its own
    ids = set(await stored_ids(store, clock))
    assert ids >= {m[0].id for m in posted[: coalescer.IN_FLIGHT]}
    assert not ids & {m[0].id for m in posted[coalescer.IN_FLIGHT :]}


async def test_a_write_that_waited_is_bound_once(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write is a full request by itself: the ones that wait are serialized, then sent
    # alone from those bytes, not bound again.
    monkeypatch.setattr(coalescer, "MOST_BYTES", 1)
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)
    bound: list[str] = []  # what was bound: a write's statements ("rows"), or a statement
    session = store.session
    rows, bind = session.rows, session._bind

    def counted_rows(statements: Any) -> Any:
        bound.append("rows")
        return rows(statements)

    def counted_bind(key: str, *args: Any) -> Any:
        bound.append(key)
        return bind(key, *args)

    monkeypatch.setattr(session, "rows", counted_rows)
    monkeypatch.setattr(session, "_bind", counted_bind)
    posted = [messages(gen, clock, 3) for _ in range(10)]
    await asyncio.gather(*(store.write_messages(queue, m, fresh=True) for m in posted))
    assert len([what for what in bound if what != "ch_insert"]) == len(posted)
    assert set(await stored_ids(store, clock)) >= {m.id for post in posted for m in post}
