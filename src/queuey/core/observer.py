"""What the storage and service layers report for the operations metrics (api.md Part 3
"Operations"), to whatever the composition root passes in: the metrics (``queuey.api.metrics``)
or :class:`Unobserved`, which drops everything."""

from __future__ import annotations

from typing import Protocol

#: What :meth:`Observer.event` counts, by application.
EVENTS = ("redelivered", "dead_lettered", "expired")


class Observer(Protocol):
    def event(self, application: str, event: str, n: int) -> None:
        """``n`` messages of ``application`` were redelivered, dead-lettered or expired
        (:data:`EVENTS`). Safe to call from any thread (SQLite's writer calls it)."""
        ...

    def storage_latencies(self, operation: str) -> list[float]:
        """The list that the latencies (seconds) of ``operation``, a method of ``Storage``,
        are appended to, on the event loop's thread; the observer takes them from there.
        Asked once per operation: on the hot path, appending is all there is to do."""
        ...

    def storage_error(self, operation: str) -> None:
        """A storage operation raised."""
        ...

    def sweep(self, seconds: float, units: int, failed: bool) -> None:
        """A sweep run took ``seconds`` and did ``units`` of upkeep; ``failed``: the store
        did not answer."""
        ...


class Unobserved:
    """An observer that drops everything (metrics off)."""

    def event(self, application: str, event: str, n: int) -> None:
        pass

    def storage_latencies(self, operation: str) -> list[float]:
        return _DROPPED

    def storage_error(self, operation: str) -> None:
        pass

    def sweep(self, seconds: float, units: int, failed: bool) -> None:
        pass


class _Dropped(list[float]):
    """A list that stays empty."""

    def append(self, value: float) -> None:
        pass


_DROPPED = _Dropped()
