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

    def storage_call(self, operation: str, seconds: float) -> None:
        """A storage operation (a method of ``Storage``) took ``seconds``. On the hot path:
        it must cost next to nothing."""
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

    def storage_call(self, operation: str, seconds: float) -> None:
        pass

    def storage_error(self, operation: str) -> None:
        pass

    def sweep(self, seconds: float, units: int, failed: bool) -> None:
        pass
