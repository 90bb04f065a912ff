"""What :meth:`CassandraStorage.changes` answers."""

from __future__ import annotations

import time


class DataVersion:
    """Cassandra has no cheap signal of another server's writes: the version changes every
    50 ms, so long-polling waiters look again at that pace, and at once after this process's
    writes (each reported by :meth:`changed`)."""

    def __init__(self) -> None:
        self._changes = 0

    def changed(self) -> None:
        self._changes += 1

    def current(self) -> int:
        return (int(time.monotonic() * 20) << 32) + self._changes

    def changes(self, since: int | None) -> tuple[int, set[tuple[str, str]] | None]:
        """No change log: any version but ``since`` means any queue may have changed."""
        position = self.current()
        return position, set() if position == since else None
