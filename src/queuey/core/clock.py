"""Time, injected: storage never reads the wall clock, tests never sleep for a TTL."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""
        ...


class SystemClock:
    def time_ns(self) -> int:
        return time.time_ns()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start_seconds: float = 1_700_000_000.0, start_ns: int | None = None) -> None:
        self._ns = int(start_seconds * 1_000_000_000) if start_ns is None else start_ns

    def time_ns(self) -> int:
        return self._ns

    def advance(self, seconds: float) -> None:
        self._ns += int(seconds * 1_000_000_000)
