"""The Apache Cassandra 5 back-end (``docs/storage-cassandra.md`` describes its data model).

The store is imported on first use, so that :mod:`.settings` (which the config loads for every
back-end) never pulls in the store or the driver."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from queuey.storage.cassandra.store import CassandraStorage

__all__ = ["CassandraStorage"]


def __getattr__(name: str) -> Any:
    if name == "CassandraStorage":
        from queuey.storage.cassandra.store import CassandraStorage

        return CassandraStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
