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
        setattr(storage, name, _timed(name, getattr(storage, name), observer))
    claim = storage.claim_messages

    async def claim_messages(queue: Queue, *args: Any, **kwargs: Any) -> list[Claim]:
        claims: list[Claim] = await claim(queue, *args, **kwargs)
        again = sum(1 for made in claims if made.message.deliveries > 1)
        if again:
            observer.event(queue.app, "redelivered", again)
        return claims

    setattr(storage, "claim_messages", claim_messages)  # noqa: B010 (an instance attribute)
    return storage


def _timed(
    name: str, operation: Callable[..., Awaitable[Any]], observer: Observer
) -> Callable[..., Awaitable[Any]]:
    clock = time.perf_counter
    report, failed = observer.storage_call, observer.storage_error

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return await operation(*args, **kwargs)
        except Exception:
            failed(name)
            raise
        finally:
            report(name, clock() - start)

    return timed
