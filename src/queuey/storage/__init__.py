"""Storage back-ends behind one contract (:mod:`queuey.storage.base`), and their registry.

:data:`BACKENDS` maps each back-end's name to the factory that builds it from the storage
settings; a factory imports its back-end when called, so an optional driver (Cassandra's) is
only imported when that back-end is chosen. :data:`ALIASES` are the original Queuey's class
names, accepted in ``[storage] backend``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuey.config import StorageSettings
    from queuey.storage.base import Storage

Factory = Callable[["StorageSettings"], "Storage"]


def _sqlite(settings: StorageSettings) -> Storage:
    from queuey.storage.sqlite import SqliteStorage

    return SqliteStorage(settings.path, durability=settings.durability)


def _memory(settings: StorageSettings) -> Storage:
    from queuey.storage.memory import MemoryStorage

    return MemoryStorage()


def _cassandra(settings: StorageSettings) -> Storage:
    from queuey.storage.cassandra import CassandraStorage

    if settings.cassandra is None:
        raise ValueError("the cassandra back-end needs [storage] settings for Cassandra")
    return CassandraStorage(settings.cassandra, settings.metadata_keyspace)


BACKENDS: Mapping[str, Factory] = MappingProxyType(
    {"sqlite": _sqlite, "memory": _memory, "cassandra": _cassandra}
)
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "queuey.storage.cassandra.CassandraQueueBackend": "cassandra",
        "queuey.storage.cassandra.CassandraMetadata": "cassandra",
        "queuey.storage.memory.MemoryQueueBackend": "memory",
        "queuey.storage.memory.MemoryMetadata": "memory",
    }
)


def backend_named(text: str) -> str | None:
    """The back-end ``text`` names (any case, or an alias), or None."""
    name = ALIASES.get(text) or text.lower()
    return name if name in BACKENDS else None


def make_storage(settings: StorageSettings) -> Storage:
    """The back-end ``settings.backend`` names, built from ``settings``; not opened yet."""
    return BACKENDS[settings.backend](settings)
