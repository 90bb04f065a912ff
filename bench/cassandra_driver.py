"""The Cassandra driver's own rates on this machine: the baselines of the Cassandra bench.

    python bench/cassandra_driver.py --hosts 127.0.0.1:9042 --duration 8 [--in-flight 64]

A plain cassandra-driver loop, no Queuey: one prepared INSERT of one row (a 140-byte body,
base64-encoded like the bench's messages) with a TTL into a time-window-compacted table, with
``--in-flight`` requests outstanding at all times (``execute_async``, the next request sent
from the previous one's callback). It uses its own keyspace (``--keyspace``, created, then
dropped at the end) and prints one JSON line: requests, seconds, rows/s and latency
percentiles (ms). ``bench/run.py`` runs it for the ``driver``, ``driver-batch`` and
``driver-get`` rows.

With ``--lwt`` it measures what the claims' floor costs instead: lightweight transactions
(``UPDATE ... IF EXISTS``, one Paxos round each) on the rows of one partition, as Queuey's
claims and acks of one queue bucket are, ``--in-flight`` at a time (Queuey sends one round per
partition at a time). With ``--rows N`` each round is one conditional batch of N such updates
on N rows of the partition, as a claim of N messages is.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

TTL_S = 3600
BODY_BYTES = 140


def parse_hosts(text: str) -> list[tuple[str, int]]:
    pairs = (item.partition(":") for item in text.split(","))
    return [(host, int(port or 9042)) for host, _, port in pairs]


class Loop:
    """``in_flight`` chains of requests, each sending its next request when one ends, until
    the deadline."""

    def __init__(
        self,
        session: Any,
        statement: Any,
        params: Any,
        in_flight: int,
        seconds: float,
        rows: int | None = None,
    ) -> None:
        self._session = session
        self._rows = rows  # rows each answer must hold (reads), else None
        self._statement = statement
        self._params = params  # makes the next request's values
        self._in_flight = in_flight
        self._seconds = seconds
        self._deadline = 0.0
        self._lock = threading.Lock()
        self._running = 0
        self._done = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0

    def run(self) -> float:
        started = time.monotonic()
        self._deadline = started + self._seconds
        self._running = self._in_flight
        for _ in range(self._in_flight):
            self._send()
        self._done.wait(self._seconds + 30)
        return time.monotonic() - started

    def _send(self) -> None:
        sent = time.monotonic()
        made = self._params()
        if self._statement is None:  # ``params`` makes whole statements (batches)
            future = self._session.execute_async(made)
        else:
            future = self._session.execute_async(self._statement, made)
        future.add_callbacks(self._ok, self._failed, callback_args=(sent,), errback_args=(sent,))

    def _ok(self, rows: Any, sent: float) -> None:
        self._next(sent, failed=self._rows is not None and len(rows) != self._rows)

    def _failed(self, _exc: BaseException, sent: float) -> None:
        self._next(sent, failed=True)

    def _next(self, sent: float, failed: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if failed:
                self.errors += 1
            else:
                self.latencies.append(now - sent)
            if now >= self._deadline:
                self._running -= 1
                if self._running == 0:
                    self._done.set()
                return
        self._send()


MESSAGES_TABLE = (
    "CREATE TABLE IF NOT EXISTS {ks}.messages (qid bigint, bucket bigint, part int,"
    " ticks bigint, sfx bigint, expires bigint, ctype text, body text, due bigint, dlv int,"
    " ctok bigint, cexp bigint, PRIMARY KEY ((qid, bucket), part, ticks, sfx))"
    " WITH compaction = {{'class': 'TimeWindowCompactionStrategy',"
    " 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}}"
)
INSERT_MESSAGE = (
    "INSERT INTO {ks}.messages"
    " (qid, bucket, part, ticks, sfx, expires, ctype, body, due, dlv, ctok, cexp)"
    " VALUES (1, 1, 0, ?, ?, ?, 'text/plain', ?, 0, 0, 0, 0) USING TTL ?"
)
READ_MESSAGES = (
    "SELECT ticks, sfx, body, ctype, expires, due, dlv FROM {ks}.messages"
    " WHERE qid = 1 AND bucket = 1 AND part = 0 AND (ticks, sfx) >= (?, ?)"
    " AND expires > ? AND due <= ? LIMIT ? ALLOW FILTERING"
)


def messages_loop(
    session: Any, keyspace: str, body: str, batch: int, read: int, prefill: int
) -> tuple[Any, Any]:
    """The statement and the request maker of ``--batch`` or ``--read``."""
    import random

    from cassandra.concurrent import execute_concurrent_with_args
    from cassandra.query import BatchStatement, BatchType

    session.execute(MESSAGES_TABLE.format(ks=keyspace), timeout=120)
    insert = session.prepare(INSERT_MESSAGE.format(ks=keyspace))
    ticks = itertools.count(time.time_ns() // 100)

    def row() -> tuple[Any, ...]:
        now_ms = time.time_ns() // 1_000_000
        return (next(ticks), 7, now_ms + TTL_S * 1000, body, TTL_S)

    if batch:

        def statements() -> Any:
            made = BatchStatement(batch_type=BatchType.UNLOGGED)
            for _ in range(batch):
                made.add(insert, row())
            return made

        return None, statements
    first = next(ticks)
    execute_concurrent_with_args(
        session, insert, [row() for _ in range(prefill)], concurrency=64, raise_on_first_error=True
    )
    last = next(ticks) - 1
    select = session.prepare(READ_MESSAGES.format(ks=keyspace))

    def params() -> tuple[Any, ...]:
        # Only positions with at least ``read`` rows after them: the last ones are skipped.
        start = random.randint(first, max(first, last - read))
        return (start, 0, time.time_ns() // 1_000_000, time.time_ns() // 1_000_000, read)

    return select, params


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(
    hosts: list[tuple[str, int]],
    keyspace: str,
    seconds: float,
    in_flight: int,
    lwt: bool,
    rows: int = 1,
    batch: int = 0,
    read: int = 0,
    prefill: int = 300_000,
) -> dict[str, Any]:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.connection import DefaultEndPoint
    from cassandra.io.libevreactor import LibevConnection
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import BatchStatement, BatchType, tuple_factory

    from cassandra import ConsistencyLevel, ProtocolVersion

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=ConsistencyLevel.QUORUM,
        request_timeout=10.0,
        row_factory=tuple_factory,  # Queuey's rows are tuples too
    )
    cluster = Cluster(
        contact_points=[DefaultEndPoint(host, port) for host, port in hosts],
        protocol_version=ProtocolVersion.V4,  # as Queuey's session
        connection_class=LibevConnection,
        sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        session = cluster.connect()
        session.default_fetch_size = None  # reads are bounded by LIMIT: no paging
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication ="
            " {'class': 'SimpleStrategy', 'replication_factor': 1}",
            timeout=120,
        )
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {keyspace}.rows (id timeuuid PRIMARY KEY, body text)"
            " WITH compaction = {'class': 'TimeWindowCompactionStrategy',"
            " 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}",
            timeout=120,
        )
        body = base64.b64encode(os.urandom(BODY_BYTES)).decode()
        if lwt:
            session.execute(
                f"CREATE TABLE IF NOT EXISTS {keyspace}.cas"
                " (p int, c int, v int, PRIMARY KEY ((p), c))",
                timeout=120,
            )
            for c in range(1000):
                session.execute(f"INSERT INTO {keyspace}.cas (p, c, v) VALUES (0, %s, 0)", (c,))
            statement = session.prepare(
                f"UPDATE {keyspace}.cas SET v = ? WHERE p = 0 AND c = ? IF EXISTS"
            )
            counter = itertools.count()

            def params() -> tuple[Any, ...]:
                n = next(counter)
                return (n, n % 1000)

            if rows > 1:
                update, one = statement, params

                def conditional() -> Any:
                    statements = BatchStatement(batch_type=BatchType.UNLOGGED)
                    for _ in range(rows):
                        statements.add(update, one())
                    return statements

                statement, params = None, conditional

        elif batch or read:
            statement, params = messages_loop(session, keyspace, body, batch, read, prefill)
        else:
            statement = session.prepare(
                f"INSERT INTO {keyspace}.rows (id, body) VALUES (?, ?) USING TTL ?"
            )

            def params() -> tuple[Any, ...]:
                return (uuid.uuid1(), body, TTL_S)

        expect = read or None
        Loop(session, statement, params, in_flight, min(2.0, seconds), expect).run()  # warm-up
        loop = Loop(session, statement, params, in_flight, seconds, expect)
        elapsed = loop.run()
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    finally:
        cluster.shutdown()
    done = len(loop.latencies)
    ms = [latency * 1000 for latency in loop.latencies]
    per_request = batch or read or 1
    return {
        "requests": done,
        "errors": loop.errors,
        "seconds": round(elapsed, 3),
        # requests (rounds) per second; with --batch or --read, rows per second
        "rows_s": round(done * per_request / elapsed, 1) if elapsed else 0.0,
        "rows_per_round": rows,
        "rows_per_request": per_request,
        "p50_ms": round(percentile(ms, 0.5), 3),
        "p90_ms": round(percentile(ms, 0.9), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(max(ms, default=0.0), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="127.0.0.1:9042")
    parser.add_argument("--keyspace", default="queuey_bench_driver")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--lwt", action="store_true", help="lightweight transactions instead")
    parser.add_argument(
        "--rows", type=int, default=1, help="with --lwt: rows per round (one conditional batch)"
    )
    parser.add_argument(
        "--batch", type=int, default=0, help="rows per unlogged batch into one partition"
    )
    parser.add_argument("--read", type=int, default=0, help="rows per read of one partition")
    parser.add_argument(
        "--prefill", type=int, default=300_000, help="with --read: rows written first"
    )
    ns = parser.parse_args()
    if ns.rows < 1:
        parser.error("--rows must be at least 1")
    if sum(1 for chosen in (ns.lwt, ns.batch, ns.read) if chosen) > 1:
        parser.error("choose one of --lwt, --batch and --read")
    if ns.read and ns.prefill <= ns.read:
        parser.error("--prefill must be larger than --read")
    result = measure(
        parse_hosts(ns.hosts),
        ns.keyspace,
        ns.duration,
        ns.in_flight,
        ns.lwt,
        ns.rows,
        batch=ns.batch,
        read=ns.read,
        prefill=ns.prefill,
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
