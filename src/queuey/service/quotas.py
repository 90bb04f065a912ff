"""Per-application quotas (:mod:`queuey.core.quotas`): what each request may add, and when an
application must wait.

Stored messages and bytes are never counted on a post. Each server process measures every
quota'd application's usage (:meth:`Storage.usage`) every ``measure_interval`` seconds and
adds what it stored itself since that measurement began, and what its posts in flight are
about to store. A post is refused whole when that sum plus the post is over a quota. So:

- through one server process, an application never stores more than its quota: a post that
  would take it over is refused before anything is written (what moves within it aside: a
  redrive, an at-most-once claim given back);
- through several, it stores at most its quota plus what the other processes stored for it
  since their last measurements began: one ``measure_interval`` (and one measurement) of
  posts through each of them;
- messages that leave (acked, expired, deleted, purged, their queue deleted) make room at the
  next measurement, within ``measure_interval`` seconds plus the measurement's own time.

Queues are counted at each creation. Long polls, streams and the post rate are counted in this
process only: with several server processes an application has each quota in each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from dataclasses import dataclass

from queuey.core.clock import Clock
from queuey.core.errors import QuotaExceeded, StorageUnavailable, TooManyRequests
from queuey.core.models import Message
from queuey.core.quotas import Quotas, QuotaSettings, Usage, body_bytes
from queuey.storage.base import Storage

log = logging.getLogger("queuey")

# Seconds a post waits for its application's first usage measurement before it gives up (503).
FIRST_MEASUREMENT_WAIT = 10.0


class _Account:
    """One application's stored usage as this process knows it, as [messages, bytes] pairs
    (plain lists: the post path updates them without allocating)."""

    __slots__ = ("before", "measured", "pending", "stored")

    def __init__(self) -> None:
        self.measured: list[int] | None = None  # None until the first measurement is done
        self.stored = [0, 0]  # everything this process stored, since it started
        self.before = [0, 0]  # ``stored`` when the last measurement began
        self.pending = [0, 0]  # posts in flight

    def usage(self) -> tuple[int, int]:
        assert self.measured is not None
        measured, stored, before, pending = self.measured, self.stored, self.before, self.pending
        return (
            measured[0] + stored[0] - before[0] + pending[0],
            measured[1] + stored[1] - before[1] + pending[1],
        )


@dataclass(slots=True)
class _Bucket:
    """A token bucket of messages: full at ``burst``, refilled at ``rate`` a second."""

    tokens: float
    at_ns: int


class QuotaPolicy:
    def __init__(
        self, storage: Storage, clock: Clock, settings: QuotaSettings, apps: Collection[str]
    ) -> None:
        self.settings = settings
        self._storage = storage
        self._clock = clock
        self._measured_apps = [app for app in apps if settings.of(app).measured]
        self._accounts = {app: _Account() for app in self._measured_apps}
        self._measured = asyncio.Event() if self._measured_apps else None
        self._task: asyncio.Task[None] | None = None
        self._long_polls: dict[str, int] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._creating: dict[str, asyncio.Lock] = {}

    def of(self, app: str) -> Quotas:
        return self.settings.of(app)

    # --- measuring ----------------------------------------------------------------------------

    def start(self) -> None:
        """Measure the quota'd applications' usage now and every ``measure_interval``."""
        if self._measured_apps and self._task is None:
            self._task = asyncio.create_task(self._measure_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def measure(self) -> None:
        """Measure every quota'd application's usage once."""
        for app in self._measured_apps:
            account = self._accounts[app]
            before = list(account.stored)
            measured = await self._storage.usage(app, self._clock.time_ns() // 1_000_000)
            account.measured, account.before = [measured.messages, measured.bytes], before
        if self._measured is not None:
            self._measured.set()

    def usage(self, app: str) -> Usage | None:
        """What ``app`` stores as this process knows it (None: not measured)."""
        account = self._accounts.get(app)
        return None if account is None or account.measured is None else Usage(*account.usage())

    async def _measure_forever(self) -> None:
        while True:
            try:
                await self.measure()
            except StorageUnavailable as error:
                log.warning("quota usage measurement failed, will retry: %s", error)
            except Exception:  # keep measuring: posts of quota'd applications wait for it
                log.exception("quota usage measurement failed, will retry")
            await asyncio.sleep(self.settings.measure_interval)

    # --- posting ------------------------------------------------------------------------------

    def limits_posts(self, app: str) -> bool:
        """Whether posts of ``app`` go through :meth:`reserve` and :meth:`settle`."""
        quotas = self.of(app)
        return quotas.measured or bool(quotas.post_rate)

    async def reserve(self, app: str, messages: Sequence[Message]) -> tuple[int, int]:
        """Before a write of ``messages``: QuotaExceeded or TooManyRequests when it would
        take ``app`` over a quota; else it counts as in flight until :meth:`settle`. Returns
        what it adds, (messages, bytes)."""
        quotas = self.of(app)
        account = self._accounts.get(app)
        if account is None:
            self._take_posts(app, quotas, len(messages))
            return (0, 0)
        if account.measured is None:
            await self._first_measurement()
        size = 0
        for message in messages:
            body = message.body
            size += len(body) if body.isascii() else body_bytes(body)
        added = (len(messages), size)
        self._check_stored(quotas, account.usage(), added)
        self._take_posts(app, quotas, len(messages))
        account.pending[0] += added[0]
        account.pending[1] += added[1]
        return added

    def settle(self, app: str, added: tuple[int, int], stored: bool) -> None:
        """The write :meth:`reserve` let through is over: it ``stored`` its messages, or not."""
        account = self._accounts.get(app)
        if account is None:
            return
        account.pending[0] -= added[0]
        account.pending[1] -= added[1]
        if stored:
            account.stored[0] += added[0]
            account.stored[1] += added[1]

    async def _first_measurement(self) -> None:
        assert self._measured is not None
        try:
            await asyncio.wait_for(self._measured.wait(), FIRST_MEASUREMENT_WAIT)
        except TimeoutError:
            raise StorageUnavailable(
                "Back-end storage unavailable: the application's usage is not measured yet"
            ) from None

    def _check_stored(self, quotas: Quotas, usage: tuple[int, int], added: tuple[int, int]) -> None:
        for quota, limit, now, more, unit in (
            ("max_stored_messages", quotas.max_stored_messages, usage[0], added[0], "messages"),
            ("max_stored_bytes", quotas.max_stored_bytes, usage[1], added[1], "bytes"),
        ):
            if limit and now + more > limit:
                raise QuotaExceeded(
                    quota, limit, f"{max(now, 0)} {unit} stored, this request adds {more}"
                )

    def _take_posts(self, app: str, quotas: Quotas, count: int) -> None:
        rate = quotas.post_rate
        if not rate:
            return
        burst = quotas.post_burst or rate
        now_ns = self._clock.time_ns()
        bucket = self._buckets.get(app)
        if bucket is None:
            bucket = self._buckets[app] = _Bucket(burst, now_ns)
        bucket.tokens = min(burst, bucket.tokens + (now_ns - bucket.at_ns) * rate / 1e9)
        bucket.at_ns = now_ns
        # A batch larger than the bucket goes when the bucket is full, and leaves it in debt.
        needed = min(count, burst)
        if bucket.tokens < needed:
            wait = math.ceil((needed - bucket.tokens) / rate)
            raise TooManyRequests(
                "post_rate", rate, f"{count} messages now; retry in {wait} s", max(wait, 1)
            )
        bucket.tokens -= count

    # --- queues -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def creating(self, app: str, name: str) -> AsyncIterator[None]:
        """Around the creation of queue ``name``: refused (QuotaExceeded) when ``app`` has
        ``max_queues`` queues already and ``name`` is not one of them. Creations of one
        application in this process run one at a time while it has that quota."""
        limit = self.of(app).max_queues
        if not limit:
            yield
            return
        lock = self._creating.setdefault(app, asyncio.Lock())
        async with lock:
            names = await self._storage.list_queue_names(app, None, limit)
            if len(names) >= limit and await self._storage.get_queue(app, name) is None:
                raise QuotaExceeded("max_queues", limit, f"{len(names)} queues exist")
            yield

    # --- concurrency --------------------------------------------------------------------------

    @contextlib.contextmanager
    def long_poll(self, app: str) -> Iterator[None]:
        """Around a read or claim that may wait: refused (TooManyRequests) when ``app`` has
        ``max_long_polls`` of them running in this process; counted until it ends, however
        it ends (an answer, an error, its client going away)."""
        limit = self.of(app).max_long_polls
        running = self._long_polls.get(app, 0)
        if limit and running >= limit:
            raise TooManyRequests(
                "max_long_polls", limit, f"{running} reads or claims with wait are running"
            )
        self._long_polls[app] = running + 1
        try:
            yield
        finally:
            left = self._long_polls[app] - 1
            if left:
                self._long_polls[app] = left
            else:
                del self._long_polls[app]

    def long_polls(self, app: str) -> int:
        """How many of ``app``'s reads and claims with wait are running in this process."""
        return self._long_polls.get(app, 0)

    def admit_stream(self, app: str, streams: int) -> None:
        """Raise TooManyRequests when ``app``, holding ``streams`` open streams in this
        process, is at its ``max_streams``."""
        limit = self.of(app).max_streams
        if limit and streams >= limit:
            raise TooManyRequests("max_streams", limit, f"{streams} streams are open")
