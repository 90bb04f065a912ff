"""A store whose operations report to an observer (the metrics): each one's latency, by
operation, and whether it failed; and the redeliveries among the claims it makes. The
composition root wraps the store it built when metrics are on; with them off nothing is
wrapped and nothing is paid."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from queuey.core.models import Claim, Queue
from queuey.core.observer import Observer
from queuey.storage.base import Storage

S = TypeVar("S", bound=Storage)

#: The operations of the storage contract: every coroutine method of ``Storage``.
OPERATIONS = tuple(
    name
    for name, member in vars(Storage).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
)


def observe(storage: S, observer: Observer) -> S:
    """``storage`` with each operation timed and its claims' redeliveries counted."""
    for name in OPERATIONS:
        after = _redeliveries(observer) if name == "claim_messages" else None
        setattr(storage, name, _timed(name, getattr(storage, name), observer, after))
    return storage


After = Callable[[tuple[Any, ...], dict[str, Any], Any], None]


def _timed(
    name: str,
    operation: Callable[..., Awaitable[Any]],
    observer: Observer,
    after: After | None = None,
) -> Callable[..., Awaitable[Any]]:
    """``operation``, timed in the one frame that awaits it, its latency appended to the
    observer's list; ``after`` sees the arguments and result of each call that succeeded."""
    clock = time.perf_counter
    record = observer.storage_latencies(name).append
    failed = observer.storage_error

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            result = await operation(*args, **kwargs)
        except Exception:
            failed(name)
            raise
        finally:
            record(clock() - start)
        if after is not None:
            after(args, kwargs, result)
        return result

    return timed


def _redeliveries(observer: Observer) -> After:
    """Counts the claims that deliver a message again (``claim_messages(queue, ...)``)."""

    def count(args: tuple[Any, ...], kwargs: dict[str, Any], claims: list[Claim]) -> None:
        again = sum(1 for made in claims if made.message.deliveries > 1)
        if again:
            queue: Queue = args[0] if args else kwargs["queue"]
            observer.event(queue.app, "redelivered", again)

    return count
