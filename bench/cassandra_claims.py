"""What claims cost on the Cassandra back-end, measured at the storage layer.

    python bench/cassandra_claims.py --hosts 127.0.0.1:9042 [--acked 10000,50000]

Uses its own keyspaces (``<prefix>_messages``, ``<prefix>_metadata``; ``--prefix``, default
``queuey_bench_claims``), emptied first. Prints, per line:

* the latency of a claim of 1 and an ack of 1, and of a claim of 10 and an ack of those 10
  (p50/p99 over sequential cycles on one queue);
* claim+ack throughput of concurrent workers (one process) on one queue (``--workers``, default
  1,4,16, ``--seconds`` each), with the requests each claim 10 + ack cycle sent to Cassandra;
* for each N of ``--acked``: N messages posted, claimed and acknowledged, then one more posted:
  the time of a claim in this process and in a new process (both start at the queue's claim
  floor, past the acknowledged messages), and with no floor at all (its row deleted: the claim
  reads through their tombstones), each with the tombstones Cassandra's trace reports for the
  claim's first read.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from typing import Any

from queuey.core.clock import SystemClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Claim, ClaimRef, Message, Queue, QueueSettings
from queuey.storage.cassandra import CassandraStorage
from queuey.storage.cassandra.floors import FLOOR_MARGIN_MS
from queuey.storage.cassandra.settings import CassandraSettings

LEASE_MS = 60_000
HOUR_MS = 3_600_000


def parse_hosts(text: str) -> tuple[tuple[str, int], ...]:
    pairs = (item.partition(":") for item in text.split(","))
    return tuple((host, int(port or 9042)) for host, _, port in pairs)


class Bench:
    def __init__(self, hosts: tuple[tuple[str, int], ...], prefix: str) -> None:
        self.settings = CassandraSettings(
            hosts=hosts, keyspace=f"{prefix}_messages", request_timeout=60.0
        )
        self.meta = f"{prefix}_metadata"
        self.clock = SystemClock()
        self.ids = IdGenerator(self.clock)

    def now(self) -> int:
        return self.clock.time_ns() // 1_000_000

    async def store(self) -> CassandraStorage:
        store = CassandraStorage(self.settings, self.meta)
        await store.open()
        return store

    def messages(self, count: int) -> list[Message]:
        out = []
        for i in range(count):
            message_id, ticks = self.ids.next()
            expires = self.now() + HOUR_MS
            out.append(Message(message_id, ticks, 1, f"job {i}", "text/plain", expires))
        return out

    async def queue(self, store: CassandraStorage, name: str) -> Queue:
        return await store.create_queue("bench", name, QueueSettings(), time.time())


def refs(claims: list[Claim]) -> list[ClaimRef]:
    return [ClaimRef(c.message.partition, c.message.id, c.token) for c in claims]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def empty(store: CassandraStorage) -> None:
    tables = ("queues", "queue_names", "dead_queues")
    for table in tables:
        store.session.driver.execute(f"TRUNCATE {store.session.meta}.{table}", timeout=120)
    rows = store.session.driver.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
        (store.settings.keyspace,),
    )
    for (table,) in rows:
        store.session.driver.execute(f"TRUNCATE {store.session.msgs}.{table}", timeout=120)


async def latency(bench: Bench, store: CassandraStorage, size: int, cycles: int) -> str:
    queue = await bench.queue(store, f"latency{size}")
    await store.write_messages(queue, bench.messages(size * cycles))
    claim_times, ack_times = [], []
    for _ in range(cycles):
        started = time.perf_counter()
        claims = await store.claim_messages(queue, [1], size, bench.now(), LEASE_MS, False)
        claimed = time.perf_counter()
        assert len(claims) == size
        assert all(await store.ack_messages(queue, refs(claims), bench.now()))
        claim_times.append(claimed - started)
        ack_times.append(time.perf_counter() - claimed)

    def spread(values: list[float]) -> str:
        values.sort()
        return f"p50 {ms(statistics.median(values))}, p99 {ms(values[int(len(values) * 0.99)])}"

    return f"claim {size}: {spread(claim_times)}; ack {size}: {spread(ack_times)}"


async def throughput(
    bench: Bench, store: CassandraStorage, workers: int, seconds: float, sent: Counter[str]
) -> str:
    """Claim 10 + ack cycles of ``workers`` at once; with the requests they sent (``sent``,
    filled by :func:`count_requests`) per cycle."""
    queue = await bench.queue(store, f"throughput{workers}")
    for _ in range(30):
        await store.write_messages(queue, bench.messages(1000))
    await asyncio.sleep(FLOOR_MARGIN_MS / 1000)  # the floors may move past the messages
    done = cycles = 0
    deadline = time.monotonic() + seconds

    async def work() -> None:
        nonlocal done, cycles
        while time.monotonic() < deadline:
            claims = await store.claim_messages(queue, [1], 10, bench.now(), LEASE_MS, False)
            if not claims:
                return
            acked = sum(await store.ack_messages(queue, refs(claims), bench.now()))
            done += acked
            cycles += 1

    sent.clear()
    started = time.monotonic()
    await asyncio.gather(*(work() for _ in range(workers)))
    rate = done / (time.monotonic() - started)
    each = ", ".join(f"{what} {n / max(cycles, 1):.2f}" for what, n in sent.most_common())
    return f"{workers} workers, claim 10 + ack: {rate:,.0f} acked messages/s; per cycle: {each}"


def count_requests(store: CassandraStorage) -> Counter[str]:
    """The requests the store sends from now on, by what they run (a statement's key, "batch",
    "conditional batch")."""
    sent: Counter[str] = Counter()
    submit = store.session.submit

    def counting(build: Any, what: str = "", named: bool = False) -> Any:
        sent[what] += 1
        return submit(build, what, named)

    store.session.submit = counting  # type: ignore[method-assign]
    return sent


async def traced_claim(store: CassandraStorage, queue: Queue, now: int) -> tuple[float, int]:
    """A claim's duration, and the tombstones Cassandra reports for the claim's reads."""
    # Where the claim starts: this process's floor, else the queue's (None: the first bucket).
    floor = store.floors.floor(queue.qid, 1)
    start = None if floor is None else floor.position
    if floor is None:
        rows = list(
            store.session.driver.execute(
                f"SELECT ticks, sfx FROM {store.session.msgs}.floors WHERE qid = %s AND part = 1",
                (queue.qid,),
            )
        )
        start = (rows[0][0], rows[0][1]) if rows else None
    started = time.perf_counter()
    claims = await store.claim_messages(queue, [1], 1, now, LEASE_MS, False)
    took = time.perf_counter() - started
    assert len(claims) == 1, claims
    # The claim's first read again, traced: what it read through.
    bucket = claims[0].message.ticks >> 32
    where = "qid = %s AND bucket = %s AND part = 1"
    params: list[Any] = [queue.qid, bucket]
    if start is not None and start[0] >> 32 == bucket:
        where += " AND (ticks, sfx) >= (%s, %s)"
        params += list(start)
    result = store.session.driver.execute(
        f"SELECT ticks FROM {store.session.msgs}.messages WHERE {where} LIMIT 1", params, trace=True
    )
    trace = result.get_query_trace(max_wait_sec=10)
    tombstones = 0
    for event in trace.events:
        text = str(event.description)
        if "tombstone" in text:
            words = text.split()
            for before, word in zip(words, words[1:], strict=False):
                if word.startswith("tombstone") and before.isdigit():
                    tombstones = max(tombstones, int(before))
    return took, tombstones


async def acked_before(bench: Bench, store: CassandraStorage, count: int) -> str:
    queue = await bench.queue(store, f"acked{count}")
    for start in range(0, count, 1000):
        await store.write_messages(queue, bench.messages(min(1000, count - start)))

    async def drain(worker: CassandraStorage) -> None:
        while claims := await worker.claim_messages(queue, [1], 100, bench.now(), LEASE_MS, False):
            await worker.ack_messages(queue, refs(claims), bench.now())

    started = time.monotonic()
    await asyncio.gather(*(drain(store) for _ in range(8)))
    drained = time.monotonic() - started
    await asyncio.sleep(3)  # past the floors' margin
    await store.claim_messages(queue, [1], 1, bench.now(), LEASE_MS, False)  # floor refresh
    await store.write_messages(queue, bench.messages(1))
    warm, warm_tombstones = await traced_claim(store, queue, bench.now())
    await store.write_messages(queue, bench.messages(1))
    fresh_store = await bench.store()
    try:
        fresh, fresh_tombstones = await traced_claim(fresh_store, queue, bench.now())
    finally:
        await fresh_store.close()
    await store.write_messages(queue, bench.messages(1))
    floors = f"{store.session.msgs}.floors"
    store.session.driver.execute(f"DELETE FROM {floors} WHERE qid = %s", (queue.qid,))
    bare_store = await bench.store()
    try:
        bare, bare_tombstones = await traced_claim(bare_store, queue, bench.now())
    finally:
        await bare_store.close()
    return (
        f"{count:,} acked before (drained in {drained:.1f} s): claim {ms(warm)}"
        f" ({warm_tombstones} tombstones read); in a new process {ms(fresh)}"
        f" ({fresh_tombstones}); with no floor at all {ms(bare)} ({bare_tombstones})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="127.0.0.1:9042")
    parser.add_argument("--prefix", default="queuey_bench_claims")
    parser.add_argument("--acked", default="1000,10000,50000")
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[1, 4, 16],
        help="concurrent claim+ack workers of the throughput lines (comma list)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="of each throughput line")
    parser.add_argument(
        "--workers-only", action="store_true", help="only the throughput lines (no latency)"
    )
    args = parser.parse_args()
    bench = Bench(parse_hosts(args.hosts), args.prefix)
    store = await bench.store()
    try:
        await empty(store)
        if not args.workers_only:
            print(await latency(bench, store, 1, args.cycles), flush=True)
            print(await latency(bench, store, 10, args.cycles), flush=True)
        sent = count_requests(store)
        for workers in args.workers:
            print(await throughput(bench, store, workers, args.seconds, sent), flush=True)
        if args.workers_only:
            return
        for count in (int(n) for n in args.acked.split(",") if n):
            print(await acked_before(bench, store, count), flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
