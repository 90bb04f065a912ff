"""The driver session: connecting, running prepared statements and batches from asyncio, and
turning every driver failure into :class:`StorageUnavailable` (in :meth:`Session.submit` and
:func:`unavailable` only).

The driver's event loop (libev) runs in its own thread; ``execute_async`` callbacks queue the
responses and wake the asyncio loop once for all that arrive before it runs. Statements are
prepared once at open."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from queuey.core.errors import StorageUnavailable
from queuey.core.models import Queue
from queuey.storage.cassandra import schema
from queuey.storage.cassandra.binding import Binder
from queuey.storage.cassandra.rows import Named, Row
from queuey.storage.cassandra.settings import CassandraSettings

_NAMED = "named"  # the execution profile whose rows are dicts (conditional statements)
_LEVEL_NAMES = ("ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL")

# Read CL, write CL for (consistency, multi_dc).
_LEVELS = {
    ("weak", False): ("ONE", "ONE"),
    ("weak", True): ("ONE", "ONE"),
    ("strong", False): ("QUORUM", "QUORUM"),
    ("strong", True): ("LOCAL_QUORUM", "LOCAL_QUORUM"),
    ("very_strong", False): ("QUORUM", "QUORUM"),
    ("very_strong", True): ("EACH_QUORUM", "EACH_QUORUM"),
}

Statements = list[tuple[str, Sequence[Any]]]
Rows = list[tuple[Any, list[bytes | None]]]  # statements serialized: (query id, values)


def queue_levels(queue: Queue, multi_dc: bool) -> tuple[str, str]:
    """The read and write consistency levels of ``queue``'s messages."""
    return _LEVELS.get((queue.settings.consistency, multi_dc), _LEVELS["strong", multi_dc])


class Session:
    """One connection to the cluster: prepared statements by key, run at a consistency level
    given by name; every future fails with StorageUnavailable only."""

    def __init__(self, settings: CassandraSettings, metadata_keyspace: str) -> None:
        self.settings = settings
        self.meta = f'"{metadata_keyspace}"'  # quoted keyspace names, for CQL
        self.msgs = f'"{settings.keyspace}"'
        self.nodes = 1
        self.cluster: Any = None  # the driver's Cluster and Session, while open
        self.driver: Any = None
        self._prepared: dict[str, Binder] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._levels: dict[str, Any] = {}
        self._batch_class: Any = None  # the driver's BatchStatement and its kinds, while open
        self._batch_types: dict[bool, Any] = {}
        # Responses waiting for the event loop, and whether it has been woken for them.
        self._answers: deque[tuple[asyncio.Future[Any], Any, str]] = deque()
        self._waking = False
        multi_dc = settings.multi_dc
        self.meta_level = "LOCAL_QUORUM" if multi_dc else "QUORUM"
        self.serial_level = "LOCAL_SERIAL" if multi_dc else "SERIAL"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is not open.")
        return self._loop

    def levels_of(self, queue: Queue) -> tuple[str, str]:
        return queue_levels(queue, self.settings.multi_dc)

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._connect)
        except StorageUnavailable:
            raise
        except Exception as exc:
            await self.close()
            raise unavailable(exc) from exc

    def _connect(self) -> None:
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster
        from cassandra.connection import DefaultEndPoint
        from cassandra.io.libevreactor import LibevConnection
        from cassandra.policies import ExponentialReconnectionPolicy
        from cassandra.query import (
            BatchStatement,
            BatchType,
            BoundStatement,
            dict_factory,
            tuple_factory,
        )

        from cassandra import ConsistencyLevel, ProtocolVersion

        settings = self.settings
        auth = None
        if settings.username is not None and settings.password is not None:
            auth = PlainTextAuthProvider(username=settings.username, password=settings.password)
        self.cluster = Cluster(
            contact_points=[DefaultEndPoint(host, port) for host, port in settings.hosts],
            # Version 5 frames carry checksums that the driver computes in Python: 3 % of the
            # process's CPU in a post, for what TCP already checks on loopback and LANs.
            protocol_version=ProtocolVersion.V4,
            connection_class=LibevConnection,
            # Without it, a request written while an earlier one is unacknowledged waits for
            # the node's delayed ACK (40 ms on Linux): posts that share requests, a few at a
            # time, would each wait that long.
            sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            execution_profiles={
                EXEC_PROFILE_DEFAULT: self._profile(tuple_factory),
                _NAMED: self._profile(dict_factory),
            },
            auth_provider=auth,
            connect_timeout=settings.connect_timeout,
            control_connection_timeout=settings.connect_timeout,
            max_schema_agreement_wait=30,
            reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=10.0),
        )
        driver = self.cluster.connect()
        driver.default_fetch_size = None  # every query is bounded by LIMIT: no paging
        self.driver = driver
        if settings.create_schema:
            schema.create(driver, settings, {"meta": self.meta, "msgs": self.msgs})
        prepared = {
            key: driver.prepare(cql) for key, cql in schema.statements(self.meta, self.msgs).items()
        }
        for key, statement in prepared.items():
            # Safe to send again to another node when one dies mid-request (the driver does
            # not retry otherwise); lightweight transactions are not.
            statement.is_idempotent = key not in schema.NOT_IDEMPOTENT
        self._prepared = {
            key: Binder(statement, BoundStatement) for key, statement in prepared.items()
        }
        self._levels = {name: getattr(ConsistencyLevel, name) for name in _LEVEL_NAMES}
        self._batch_class = BatchStatement
        self._batch_types = {True: BatchType.LOGGED, False: BatchType.UNLOGGED}
        self.nodes = max(1, len(self.cluster.metadata.all_hosts()))

    def _profile(self, row_factory: Callable[..., Any]) -> Any:
        from cassandra.cluster import ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

        from cassandra import ConsistencyLevel

        settings = self.settings
        return ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(
                DCAwareRoundRobinPolicy(local_dc=settings.local_dc)
            ),
            request_timeout=settings.request_timeout,
            row_factory=row_factory,
            consistency_level=ConsistencyLevel.LOCAL_QUORUM
            if settings.multi_dc
            else ConsistencyLevel.QUORUM,
            serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL
            if settings.multi_dc
            else ConsistencyLevel.SERIAL,
        )

    async def close(self) -> None:
        cluster, self.cluster, self.driver = self.cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    def execute(
        self, key: str, params: Sequence[Any], level: str | None = None
    ) -> asyncio.Future[list[Row]]:
        """Run a prepared statement; the future's result is its rows (StorageUnavailable on
        any failure)."""
        return self.submit(lambda: self._bind(key, params, level), key)

    def named(
        self, key: str, params: Sequence[Any], level: str | None = None
    ) -> asyncio.Future[list[Named]]:
        """:meth:`execute` with rows as dicts (conditional statements answer with columns
        that depend on the outcome)."""
        return self.submit(lambda: self._bind(key, params, level), key, named=True)

    def each(self, statements: Statements, level: str) -> asyncio.Future[list[list[Row]]]:
        """Run ``statements`` side by side, each as a request of its own (no batch)."""
        return asyncio.gather(*(self.execute(key, params, level) for key, params in statements))

    def batch(self, statements: Statements, level: str, logged: bool) -> asyncio.Future[list[Row]]:
        if len(statements) == 1:
            key, params = statements[0]
            return self.execute(key, params, level)
        return self.submit(lambda: self.build_batch(statements, level, logged), "batch")

    def build_batch(
        self, statements: Statements, level: str, logged: bool, idempotent: bool = True
    ) -> Any:
        route = statements[0] if statements else None
        return self.batch_of(route, self.rows(statements), level, logged, idempotent)

    def rows(self, statements: Statements) -> Rows:
        """``statements`` serialized for a batch (the driver's exception for a value it
        refuses)."""
        prepared = self._prepared
        out: Rows = []
        for key, params in statements:
            binder = prepared[key]
            out.append((binder.query_id, binder.values(params)))
        return out

    def batch_of(
        self,
        route: tuple[str, Sequence[Any]] | None,
        rows: Rows,
        level: str,
        logged: bool,
        idempotent: bool = True,
    ) -> Any:
        """A batch of serialized ``rows``, sent where the statement ``route`` would go."""
        kind = self._batch_types[logged]
        batch = self._batch_class(batch_type=kind, consistency_level=self._levels[level])
        batch.is_idempotent = idempotent  # plain rows with fixed keys and values; not CAS
        if route is not None:
            key, params = route
            batch._update_state(self._prepared[key].bind(params))  # routing key and keyspace
        add = batch._add_statement_and_params  # values already serialized: no bind() again
        for query_id, values in rows:
            add(True, query_id, values)
        return batch

    def submit(
        self, build: Callable[[], Any], what: str = "", named: bool = False
    ) -> asyncio.Future[Any]:
        """Send what ``build`` makes (a bound statement or a batch); its rows, or
        StorageUnavailable."""
        loop = self.loop
        future: asyncio.Future[Any] = loop.create_future()
        driver = self.driver
        if driver is None:
            future.set_exception(StorageUnavailable("Back-end storage unavailable: closed."))
            return future
        try:
            if named:
                response = driver.execute_async(build(), execution_profile=_NAMED)
            else:
                response = driver.execute_async(build())
        except Exception as exc:  # a value the driver cannot encode, no connection...
            future.set_exception(unavailable(exc, what))
            return future
        response.add_callbacks(
            self._answered,
            self._answered,
            callback_args=(future, what),
            errback_args=(future, what),
        )
        return future

    def _answered(self, outcome: Any, future: asyncio.Future[Any], what: str) -> None:
        """A response (rows or a failure), on the driver's thread: queued for the event loop,
        which is woken once for all the responses that arrive before it runs."""
        self._answers.append((future, outcome, what))
        if not self._waking:
            self._waking = True
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        """Resolve the futures of the queued responses (on the event loop)."""
        self._waking = False
        answers = self._answers
        while answers:
            future, outcome, what = answers.popleft()
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(unavailable(outcome, what))
            else:
                future.set_result(outcome if outcome is not None else [])

    def _bind(self, key: str, params: Sequence[Any], level: str | None) -> Any:
        bound = self._prepared[key].bind(params)
        if level is not None:
            bound.consistency_level = self._levels[level]
        return bound


def unavailable(exc: BaseException, what: str = "") -> StorageUnavailable:
    """``exc``, a driver failure, as the StorageUnavailable that reports it."""
    during = f" ({what})" if what else ""
    error = StorageUnavailable(f"Back-end storage unavailable{during}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def too_few_replicas(error: StorageUnavailable) -> bool:
    """Whether Cassandra refused the request at once because too few replicas are alive."""
    from cassandra.cluster import NoHostAvailable

    from cassandra import Unavailable

    cause = error.__cause__
    if isinstance(cause, NoHostAvailable) and cause.errors:
        return all(isinstance(e, Unavailable) for e in cause.errors.values())
    return isinstance(cause, Unavailable)


def too_large(error: StorageUnavailable) -> bool:
    """Whether Cassandra refused a batch for its size (over the node's
    ``batch_size_fail_threshold``): nothing of it was written."""
    from cassandra import InvalidRequest

    cause = error.__cause__
    return isinstance(cause, InvalidRequest) and "Batch too large" in str(cause)


def is_cas_timeout(error: StorageUnavailable) -> bool:
    cause = error.__cause__
    return type(cause).__name__ == "WriteTimeout" and "CAS" in str(cause)


def unknown_outcome(error: StorageUnavailable) -> bool:
    """Whether a failed conditional statement may have been applied all the same."""
    return is_cas_timeout(error) or type(error.__cause__).__name__ == "OperationTimedOut"
