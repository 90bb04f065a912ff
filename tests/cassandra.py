"""The Cassandra node the test suite runs against, and fresh stores on it.

The suite starts one node with ``tools/cassandra/node.py`` (or reuses the one that tool started
before: it keeps running between test runs; ``make cassandra-stop`` stops it), unless
``QUEUEY_TEST_CASSANDRA_HOSTS`` names a running cluster (``host[:port],...``). Without Java or
Maven the Cassandra tests are skipped, except when the ``CI`` variable is set: then they fail.

Every test gets an empty store: the tables of this checkout's pair of test keyspaces (made
afresh at the start of each run) are truncated before the test (``auto_snapshot`` is off on
the test node, so a truncation costs milliseconds).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Claim, ClaimRef, Message, Queue, QueueSettings
from queuey.core.observer import Observer
from queuey.storage.cassandra import CassandraStorage
from queuey.storage.cassandra.settings import CassandraSettings
from queuey.storage.keys import sfx_of

# Named after this checkout, so test runs of two checkouts can share one node.
_CHECKOUT = hashlib.sha1(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:8]
PREFIX = f"queuey_test_{_CHECKOUT}"
KEYSPACE = f"{PREFIX}_messages"
METADATA_KEYSPACE = f"{PREFIX}_metadata"
TABLES = (
    f"{METADATA_KEYSPACE}.queues",
    f"{METADATA_KEYSPACE}.queue_names",
    f"{METADATA_KEYSPACE}.dead_queues",
    f"{METADATA_KEYSPACE}.dead_letter_senders",
    f"{KEYSPACE}.buckets",
    f"{KEYSPACE}.messages",
    f"{KEYSPACE}.expiry",
    f"{KEYSPACE}.expiry_hours",
    f"{KEYSPACE}.wakeups",
    f"{KEYSPACE}.dead_letters",
    f"{KEYSPACE}.moves",
    f"{KEYSPACE}.dedup",
    f"{KEYSPACE}.floors",
    f"{KEYSPACE}.changes",
)


@functools.cache
def _hosts() -> tuple[tuple[tuple[str, int], ...], str]:
    """The hosts of the test node, or why there are none."""
    given = os.environ.get("QUEUEY_TEST_CASSANDRA_HOSTS")
    if given:
        return _parse(given), ""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        return (), f"Cassandra needs {' and '.join(missing)} on PATH"
    from tools.cassandra import node

    try:
        hosts = node.start(node.SINGLE, quiet=True)
    except node.NodeError as error:
        return (), f"the Cassandra test node did not start: {error}"
    _drop_keyspaces(_parse(hosts))
    return _parse(hosts), ""


def _drop_keyspaces(hosts: tuple[tuple[str, int], ...]) -> None:
    """Start the session from keyspaces made by the current schema (the node outlives runs)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.connection import DefaultEndPoint
    from cassandra.io.libevreactor import LibevConnection
    from cassandra.policies import DCAwareRoundRobinPolicy

    cluster = Cluster(
        contact_points=[DefaultEndPoint(host, port) for host, port in hosts],
        connection_class=LibevConnection,
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy())
        },
    )
    try:
        session = cluster.connect()
        for keyspace in (KEYSPACE, METADATA_KEYSPACE):
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def _parse(text: str) -> tuple[tuple[str, int], ...]:
    """``host[:port],...`` as (host, port) pairs."""
    pairs = (item.partition(":") for item in text.split(","))
    return tuple((host, int(port or 9042)) for host, _, port in pairs)


def hosts() -> tuple[tuple[str, int], ...]:
    """The test node's hosts; skips the test (fails it under CI) when there is none."""
    found, reason = _hosts()
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"Cassandra is required in CI: {reason}")
        pytest.skip(reason)
    return found


def settings(**changes: object) -> CassandraSettings:
    base = CassandraSettings(hosts=hosts(), keyspace=KEYSPACE, request_timeout=20.0)
    return CassandraSettings(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})


class FreshCassandraStorage(CassandraStorage):
    """A store on the test keyspaces, emptied when it opens."""

    def __init__(self, observer: Observer | None = None) -> None:
        super().__init__(settings(), METADATA_KEYSPACE, observer)

    async def open(self) -> None:
        await super().open()
        await asyncio.to_thread(self._truncate)

    def _truncate(self) -> None:
        for table in TABLES:
            self.session.driver.execute(f"TRUNCATE {table}", timeout=60)


async def fresh_store() -> AsyncIterator[CassandraStorage]:
    """An open store on the emptied test keyspaces, closed after the test (a fixture's body)."""
    store = FreshCassandraStorage()
    await store.open()
    yield store
    await store.close()


def cql(store: CassandraStorage, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run a statement on the store's session (%s placeholders), for looking at the tables."""
    return list(store.session.driver.execute(statement, params))


async def second_store() -> AsyncIterator[CassandraStorage]:
    """Another server's store on the same keyspaces, opened after the test's store emptied
    them (a fixture's body)."""
    other = CassandraStorage(settings(), METADATA_KEYSPACE)
    await other.open()
    yield other
    await other.close()


def ids(clock: FakeClock) -> IdGenerator:
    """Message ids on the test's clock (a fixture's body)."""
    return IdGenerator(clock)


# Work queues on the store: what the tests of claims, dead letters, dedup and floors share.

APP = "app"
HOUR_MS = 3_600_000
LEASE_MS = 30_000


def now_ms(clock: FakeClock) -> int:
    return clock.time_ns() // 1_000_000


def messages(gen: IdGenerator, clock: FakeClock, count: int, partition: int = 1) -> list[Message]:
    """``count`` messages of one partition, an hour to live."""
    out = []
    for i in range(count):
        message_id, ticks = gen.next()
        out.append(
            Message(message_id, ticks, partition, f"m{i}", "text/plain", now_ms(clock) + HOUR_MS)
        )
    return out


def refs(claims: list[Claim]) -> list[ClaimRef]:
    return [ClaimRef(c.message.partition, c.message.id, c.token) for c in claims]


def row_of(store: CassandraStorage, queue: Queue, message: Message, columns: str) -> Any:
    """``columns`` of the message's row (None: no row)."""
    rows = cql(
        store,
        f"SELECT {columns} FROM {KEYSPACE}.messages"
        " WHERE qid = %s AND bucket = %s AND part = %s AND ticks = %s AND sfx = %s",
        queue.qid, message.ticks >> 32, message.partition, message.ticks, sfx_of(message.id),
    )  # fmt: skip
    return rows[0] if rows else None


async def work_queue(store: CassandraStorage, name: str = "work", **changes: Any) -> Queue:
    return await store.create_queue(APP, name, QueueSettings(**changes), 1.0)


async def stored(store: CassandraStorage, clock: FakeClock, name: str = "work") -> list[Message]:
    """The live messages of the first partition of queue ``name``, oldest first."""
    queue = await store.get_queue(APP, name)
    assert queue is not None
    return await store.read_messages(queue, [1], None, False, 1000, now_ms(clock))


def count_requests(store: CassandraStorage, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The list that the store's session fills from now on with what each request it sends
    runs (a statement's key, "batch", "conditional batch")."""
    sent: list[str] = []
    submit = store.session.submit

    def counting(build: Any, what: str = "", named: bool = False) -> Any:
        sent.append(what)
        return submit(build, what, named)

    monkeypatch.setattr(store.session, "submit", counting)
    return sent
