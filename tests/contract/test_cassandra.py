"""What CassandraStorage does beyond the shared contract: its data model on a real Cassandra 5
node (time buckets, the bucket registry, the schema's options), consistency levels, several
servers on one cluster, and driver failures turned into StorageUnavailable."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest

from queuey.config import ConfigError, load_settings
from queuey.core.clock import FakeClock, SystemClock
from queuey.core.errors import QueueExists, QueueNotFound, StorageUnavailable
from queuey.core.ids import IdGenerator, uuid1_hex
from queuey.core.models import Caller, Cursor, Message, Queue, QueueSettings
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage.cassandra import CassandraStorage
from queuey.storage.cassandra.messages import BUCKET_PAGE
from queuey.storage.cassandra.queues import QUEUE_CACHE_S
from queuey.storage.cassandra.rows import MIN_TTL, index_ttl, message_ttl
from queuey.storage.cassandra.schema import replication
from queuey.storage.cassandra.settings import CassandraSettings
from tests import cassandra as node

APP = "app"
HOUR_MS = 3_600_000


store = pytest.fixture(node.fresh_store, name="store")


async def other_store() -> CassandraStorage:
    """A second server's store on the same keyspaces."""
    second = CassandraStorage(node.settings(), node.METADATA_KEYSPACE)
    await second.open()
    return second


def now_ms(clock: FakeClock) -> int:
    return clock.time_ns() // 1_000_000


cql = node.cql


def spread(clock: FakeClock, count: int, partitions: int = 1) -> list[Message]:
    """Messages one bucket (2^32 ticks, ~7 minutes) apart, partitions taking turns."""
    base = IdGenerator(clock).next()[1]
    out = []
    for i in range(count):
        ticks = base + (i << 32)
        message_id = uuid1_hex(ticks, "8000000000000001")
        part = 1 + i % partitions
        out.append(Message(message_id, ticks, part, f"m{i}", "text/plain", now_ms(clock) + HOUR_MS))
    return out


def test_message_and_index_ttls_follow_the_messages_own_time() -> None:
    ticks = IdGenerator(FakeClock()).next()[1]
    at = (ticks - 0x01B21DD213814000) // 10_000
    # A message lives past its expiry in Cassandra; its index row goes before it.
    assert message_ttl(at + 3_600_000, ticks) == 3602
    assert index_ttl(at + 3_600_000, ticks) == 3598
    # Dead on arrival or short-lived: kept a minute, so the sweep can still count it.
    assert message_ttl(at - 5_000, ticks) == MIN_TTL
    assert index_ttl(at + 1_000, ticks) == MIN_TTL


async def test_the_store_declares_itself_shared_with_the_node_count(
    store: CassandraStorage,
) -> None:
    assert (store.name, store.shared, store.nodes) == ("cassandra", True, 1)


async def test_the_connections_to_the_node_send_without_waiting_for_acknowledgements(
    store: CassandraStorage,
) -> None:
    """TCP_NODELAY on every connection the driver opened: without it, a request written behind
    an unacknowledged one waits for the node's delayed ACK."""
    pools = store.session.driver.get_pools()
    sockets = [store.session.cluster.control_connection._connection._socket]
    sockets += [connection._socket for pool in pools for connection in pool.get_connections()]
    assert len(sockets) >= 2
    for sock in sockets:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


async def test_the_schema_uses_time_window_compaction_and_the_keyspaces_asked_for(
    store: CassandraStorage,
) -> None:
    rows = cql(
        store,
        "SELECT table_name, compaction FROM system_schema.tables WHERE keyspace_name = %s",
        node.KEYSPACE,
    )
    compaction = {name: options["class"] for name, options in rows}
    assert compaction["messages"].endswith("TimeWindowCompactionStrategy")
    assert compaction["expiry"].endswith("TimeWindowCompactionStrategy")
    assert compaction["changes"].endswith("TimeWindowCompactionStrategy")
    tables = cql(
        store,
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
        node.METADATA_KEYSPACE,
    )
    assert {name for (name,) in tables} == {
        "queues",
        "queue_names",
        "dead_queues",
        "dead_letter_senders",
    }


@pytest.mark.parametrize(
    ("consistency", "multi_dc", "levels"),
    [
        ("weak", False, ("ONE", "ONE")),
        ("strong", False, ("QUORUM", "QUORUM")),
        ("very_strong", False, ("QUORUM", "QUORUM")),
        ("weak", True, ("ONE", "ONE")),
        ("strong", True, ("LOCAL_QUORUM", "LOCAL_QUORUM")),
        ("very_strong", True, ("EACH_QUORUM", "EACH_QUORUM")),
    ],
)
def test_queue_consistency_maps_to_read_and_write_levels(
    consistency: str, multi_dc: bool, levels: tuple[str, str]
) -> None:
    storage = CassandraStorage(CassandraSettings(multi_dc=multi_dc))
    queue = Queue(APP, "q", 1, 0.0, QueueSettings(consistency=consistency))
    assert storage.session.levels_of(queue) == levels


async def test_messages_live_in_one_partition_per_time_bucket(
    store: CassandraStorage, clock: FakeClock
) -> None:
    queue = await store.create_queue(APP, "q", QueueSettings(partitions=2), 1.0)
    messages = spread(clock, 3, partitions=2)
    await store.write_messages(queue, messages)

    buckets = cql(store, f"SELECT bucket FROM {node.KEYSPACE}.buckets WHERE qid = %s", queue.qid)
    assert [b for (b,) in buckets] == [m.ticks >> 32 for m in messages]
    for m in messages:
        rows = cql(
            store,
            f"SELECT part, body FROM {node.KEYSPACE}.messages WHERE qid = %s AND bucket = %s",
            queue.qid,
            m.ticks >> 32,
        )
        assert rows == [(m.partition, m.body)]


async def test_reads_counts_gets_and_deletes_span_many_buckets(
    store: CassandraStorage, clock: FakeClock
) -> None:
    queue = await store.create_queue(APP, "q", QueueSettings(partitions=2), 1.0)
    messages = spread(clock, BUCKET_PAGE + 8, partitions=2)  # more buckets than one page
    await store.write_messages(queue, messages[::2])
    await store.write_messages(queue, messages[1::2])
    now = now_ms(clock)
    one = [m for m in messages if m.partition == 1]
    two = [m for m in messages if m.partition == 2]

    assert await store.read_messages(queue, [2, 1], None, False, 100, now) == two + one
    assert await store.read_messages(queue, [1], None, True, 100, now) == one[::-1]
    assert await store.read_messages(queue, [1, 2], None, False, 3, now) == one[:3] + two[:3]
    middle = one[10]
    after = Cursor(middle.ticks, middle.id, inclusive=False)
    assert await store.read_messages(queue, [1], after, False, 4, now) == one[11:15]
    assert await store.read_messages(queue, [1], after, True, 4, now) == one[9:5:-1]
    assert await store.count_messages(queue, now) == len(messages)
    wanted = [(m.partition, m.id) for m in (messages[30], messages[2], messages[17])]
    assert await store.get_messages(queue, wanted, now) == [messages[30], messages[2], messages[17]]

    await store.delete_messages(queue, wanted)
    assert await store.count_messages(queue, now) == len(messages) - 3
    assert await store.delete_queue(APP, "q")
    assert await store.read_messages(queue, [1, 2], None, False, 100, now) == []
    assert sum([await store.sweep(now, 1000), await store.sweep(now, 1000)]) == len(messages) - 3
    assert cql(store, f"SELECT * FROM {node.KEYSPACE}.buckets WHERE qid = %s", queue.qid) == []


async def test_a_deleted_queues_buckets_are_reclaimed_within_the_limit(
    store: CassandraStorage, clock: FakeClock
) -> None:
    queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
    await store.write_messages(queue, spread(clock, 5))
    await store.delete_queue(APP, "q")

    assert [await store.sweep(now_ms(clock), 2) for _ in range(4)] == [2, 2, 1, 0]


async def test_two_servers_on_one_cluster_see_each_other_and_race_fairly(
    store: CassandraStorage, clock: FakeClock
) -> None:
    second = await other_store()
    try:
        results = await asyncio.gather(
            store.create_queue(APP, "race", QueueSettings(), 1.0),
            second.create_queue(APP, "race", QueueSettings(partitions=2), 2.0),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Queue)]
        [loser] = [r for r in results if isinstance(r, QueueExists)]
        assert len(winners) == 1
        queue = winners[0]
        # The lightweight transaction's answer names the settings that won.
        assert loser.existing == queue
        assert await second.get_queue(APP, "race") == await store.get_queue(APP, "race") == queue

        message_id, ticks = IdGenerator(clock).next()
        message = Message(message_id, ticks, 1, "hi", "text/plain", now_ms(clock) + HOUR_MS)
        await second.write_messages(queue, [message])
        assert await store.read_messages(queue, [1], None, False, 10, now_ms(clock)) == [message]
    finally:
        await second.close()


async def test_two_servers_creating_one_queue_with_the_same_settings_both_succeed(
    store: CassandraStorage, clock: FakeClock
) -> None:
    second = await other_store()
    try:
        services = [
            QueueService(s, [APP], clock, Notifier(s, POLL_INTERVAL)) for s in (store, second)
        ]
        caller = Caller(APP)
        params = {"queue_name": "qdo_error", "partitions": "7"}
        results = await asyncio.gather(
            *(service.create_queue(caller, APP, params) for service in services * 3)
        )

        assert sorted(created for _, created in results) == [False] * 5 + [True]
        [queue] = {queue for queue, _ in results}
        assert queue.partitions == 7 and await second.get_queue(APP, "qdo_error") == queue
        different = {"queue_name": "qdo_error", "partitions": "3"}
        with pytest.raises(QueueExists):
            await services[1].create_queue(caller, APP, different)
    finally:
        await second.close()


async def test_a_queue_deleted_or_recreated_through_another_server_is_noticed_within_the_cache_time(
    store: CassandraStorage, clock: FakeClock
) -> None:
    second = await other_store()
    try:
        queue = await store.create_queue(APP, "moved", QueueSettings(), 1.0)
        assert await second.get_queue(APP, "moved") == queue  # second now holds a copy
        gen = IdGenerator(clock)

        def fresh() -> Message:
            message_id, ticks = gen.next()
            return Message(message_id, ticks, 1, "hi", "text/plain", now_ms(clock) + HOUR_MS)

        await store.delete_queue(APP, "moved")
        again = await store.create_queue(APP, "moved", QueueSettings(partitions=2), 2.0)
        with pytest.raises(QueueNotFound):  # this server's own change is seen at once
            await store.write_messages(queue, [fresh()])
        assert await store.get_queue(APP, "moved") == again

        # The other server answers from its copy until QUEUE_CACHE_S has passed, then from
        # the row: the re-created queue, and the old one is gone.
        started = asyncio.get_running_loop().time()
        while await second.get_queue(APP, "moved") != again:
            assert asyncio.get_running_loop().time() - started < QUEUE_CACHE_S + 0.5
            await asyncio.sleep(0.05)
        with pytest.raises(QueueNotFound):
            await second.write_messages(queue, [fresh()])
        assert await second.read_messages(queue, [1], None, False, 10, now_ms(clock)) == []
        assert await second.claim_messages(queue, [1], 10, now_ms(clock), 1000, False) == []
        posted = fresh()
        await second.write_messages(again, [posted])
        assert await store.read_messages(again, [1], None, False, 10, now_ms(clock)) == [posted]

        await store.delete_queue(APP, "moved")
        started = asyncio.get_running_loop().time()
        while await second.get_queue(APP, "moved") is not None:
            assert asyncio.get_running_loop().time() - started < QUEUE_CACHE_S + 0.5
            await asyncio.sleep(0.05)
        with pytest.raises(QueueNotFound):
            await second.write_messages(again, [fresh()])
    finally:
        await second.close()


async def test_consumers_ended_through_another_server_show_there_within_the_cache_time(
    store: CassandraStorage,
) -> None:
    queue = await store.create_queue(APP, "ends", QueueSettings(), 1.0)
    second = await other_store()
    try:
        assert await second.get_queue(APP, "ends") == queue  # second now holds a copy
        read_at = asyncio.get_running_loop().time()
        ended = await store.end_consumers(APP, "ends")
        # Second's own update a while later rewrites its copy, and keeps it as old as its
        # read: the marker shows within QUEUE_CACHE_S of that read all the same, as a pause
        # through store would.
        await asyncio.sleep(0.8)
        paused = await second.update_queue(APP, "ends", QueueSettings(paused=True))
        assert paused.end_marker == queue.end_marker  # from the copy
        while (seen := await second.get_queue(APP, "ends")) != replace(
            ended, settings=paused.settings
        ):
            assert asyncio.get_running_loop().time() - read_at < QUEUE_CACHE_S + 0.5, seen
            await asyncio.sleep(0.05)
        # Its own end moves the marker also from a copy that is behind (a transaction that
        # did not apply answers the marker it found), and shows at once.
        behind = await store.end_consumers(APP, "ends")
        again = await second.end_consumers(APP, "ends")
        assert again.end_marker > behind.end_marker > ended.end_marker
        assert await second.get_queue(APP, "ends") == replace(
            ended, settings=paused.settings, end_marker=again.end_marker
        )
    finally:
        await second.close()


async def test_a_keyspace_made_before_the_end_marker_gains_it(store: CassandraStorage) -> None:
    queue = await store.create_queue(APP, "old", QueueSettings(partitions=2), 1.0)
    cql(store, f"ALTER TABLE {node.METADATA_KEYSPACE}.queues DROP end_marker")

    later = await other_store()  # a server of this version opens the keyspace
    try:
        columns = cql(
            store,
            "SELECT column_name FROM system_schema.columns"
            " WHERE keyspace_name = %s AND table_name = 'queues'",
            node.METADATA_KEYSPACE,
        )
        assert ("end_marker",) in columns
        assert await later.get_queue(APP, "old") == queue
        ended = await later.end_consumers(APP, "old")
        assert ended == replace(queue, end_marker=1)
        assert await later.get_queue(APP, "old") == ended
    finally:
        await later.close()


async def test_a_post_of_new_ids_is_one_request_and_a_repeated_id_is_looked_up_first(
    store: CassandraStorage, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await store.create_queue(APP, "one", QueueSettings(), 1.0)
    gen = IdGenerator(clock)
    sent = node.count_requests(store, monkeypatch)
    message_id, ticks = gen.next()
    first = Message(message_id, ticks, 1, "first", "text/plain", now_ms(clock) + HOUR_MS)
    await store.write_messages(queue, [first], fresh=True)
    # The batch (message and index rows), nothing read before; the change row follows it.
    assert len(sent) == 1 and "ch_insert" not in sent
    batch = [Message(i, t, 1, "b", "text/plain", now_ms(clock) + HOUR_MS) for i, t in
             (gen.next() for _ in range(5))]  # fmt: skip
    await store.changes_log.drain()
    sent.clear()
    await store.write_messages(queue, batch, fresh=True)
    assert len(sent) == 1 and "ch_insert" not in sent

    await store.changes_log.drain()
    sent.clear()
    clash = Message(first.id, first.ticks, 1, "clash", "text/plain", now_ms(clock) + HOUR_MS)
    await store.write_messages(queue, [clash])
    assert sent[0] == "m_keys"  # an id written before is looked up, and stays as it was
    found = await store.get_messages(queue, [(1, first.id)], now_ms(clock))
    assert [m.body for m in found] == ["first"]


async def test_reads_from_a_cursor_and_claims_from_the_floors_go_straight_to_their_bucket(
    store: CassandraStorage, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await store.create_queue(APP, "straight", QueueSettings(), 1.0)
    gen = IdGenerator(clock)
    posted = [
        Message(i, t, 1, f"m{n}", "text/plain", now_ms(clock) + HOUR_MS)
        for n, (i, t) in enumerate(gen.next() for _ in range(30))
    ]
    await store.write_messages(queue, posted)
    await store.changes_log.drain()  # its change row: not part of what is counted
    sent = node.count_requests(store, monkeypatch)
    cursor = Cursor(posted[5].ticks, posted[5].id, inclusive=True)
    found = await store.read_messages(queue, [1], cursor, False, 10, now_ms(clock))
    assert found == posted[5:15]
    assert sent == ["r_False_True"]  # one request: no registry, no queue row
    sent.clear()
    found = await store.read_messages(queue, [1], cursor, True, 10, now_ms(clock))
    assert found == posted[5::-1]  # not enough in the cursor's bucket: the registry is read
    assert sent == ["r_True_True", "b_desc"]

    sent.clear()
    first = await store.claim_messages(queue, [1], 2, now_ms(clock), 60_000, False)
    assert [c.message for c in first] == [replace(m, deliveries=1) for m in posted[:2]]
    assert "b_asc" in sent  # no floor yet: the claim walks the registry
    sent.clear()
    second = await store.claim_messages(queue, [1], 2, now_ms(clock), 60_000, False)
    assert [c.message for c in second] == [replace(m, deliveries=1) for m in posted[2:4]]
    # From the floor's bucket at once: the candidates, then the transaction with the leases'
    # index rows beside it.
    assert sent[0].startswith("c_scan_") and "b_asc" not in sent and "q_get" not in sent
    assert len(sent) == 3


async def test_only_expiry_index_rows_that_outlive_their_messages_expiry_are_written(
    store: CassandraStorage,
) -> None:
    queue = await store.create_queue(APP, "index", QueueSettings(), 1.0)
    gen = IdGenerator(SystemClock())  # the rows' TTLs run on Cassandra's wall clock
    wall_ms = time.time_ns() // 1_000_000
    (long_id, long_ticks), (short_id, short_ticks) = gen.next(), gen.next()
    lasting = Message(long_id, long_ticks, 1, "hour", "text/plain", wall_ms + HOUR_MS)
    brief = Message(short_id, short_ticks, 1, "brief", "text/plain", wall_ms + 30_000)

    await store.write_messages(queue, [lasting, brief])

    # The hour-long message's row would be gone (TTL) before it expires: no sweep could read
    # it. The 30-second one's lives a minute: the sweep finds it.
    rows = cql(
        store,
        f"SELECT expires FROM {node.KEYSPACE}.expiry WHERE qid = %s ALLOW FILTERING",
        queue.qid,
    )
    assert rows == [(brief.expires_ms,)]
    later = brief.expires_ms + 1
    assert await store.sweep(later, 100) == 1
    assert await store.read_messages(queue, [1], None, False, 10, later) == [lasting]


async def test_driver_failures_become_storage_unavailable(
    store: CassandraStorage, clock: FakeClock
) -> None:
    queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
    profile = store.session.cluster.profile_manager.default
    profile.request_timeout = 0.000001  # every request times out in the driver
    try:
        with pytest.raises(StorageUnavailable, match="OperationTimedOut"):
            await store.read_messages(queue, [1], None, False, 10, now_ms(clock))
        with pytest.raises(StorageUnavailable):
            await store.ping()
    finally:
        profile.request_timeout = 20.0
    await store.ping()  # and the store recovers


async def test_a_cluster_that_does_not_answer_fails_open_with_storage_unavailable() -> None:
    unreachable = CassandraStorage(node.settings(hosts=(("127.0.0.1", 1),), connect_timeout=2.0))
    with pytest.raises(StorageUnavailable, match="127.0.0.1:1"):
        await unreachable.open()
    await unreachable.close()


def test_replication_settings_choose_the_keyspace_strategy(tmp_path: Path) -> None:
    def storage(extra: str) -> CassandraSettings:
        config = tmp_path / "queuey.ini"
        config.write_text(f"[storage]\nbackend = cassandra\n{extra}")
        cassandra = load_settings(config, {}).storage.cassandra
        assert cassandra is not None
        return cassandra

    assert replication(storage("replication_factor = 3\n")) == (
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    assert replication(storage("replication_factor = 2\nlocal_dc = east\n")) == (
        "{'class': 'NetworkTopologyStrategy', 'east': 2}"
    )
    per_dc = storage("replication = east:3, west:2\n")
    assert per_dc.replication == (("east", 3), ("west", 2))
    assert replication(per_dc) == "{'class': 'NetworkTopologyStrategy', 'east': 3, 'west': 2}"
    with pytest.raises(ConfigError, match="must be dc:factor"):
        storage("replication = east\n")


async def test_the_sweep_pages_through_the_expiry_index_and_drops_past_hours(
    store: CassandraStorage, clock: FakeClock
) -> None:
    queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
    gen = IdGenerator(clock)
    dying = []
    for i in range(150):  # an index row each: every message expires at its own ms
        message_id, ticks = gen.next()
        dying.append(Message(message_id, ticks, 1, "x", "text/plain", now_ms(clock) + i))
    await store.write_messages(queue, dying)
    later = now_ms(clock) + 2 * HOUR_MS

    assert await store.sweep(later, 1000) == len(dying)
    assert await store.sweep(later, 1000) == 0
    shards = cql(store, f"SELECT shard, hour FROM {node.KEYSPACE}.expiry_hours")
    assert shards == []
