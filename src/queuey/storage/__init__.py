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
    from queuey.core.observer import Observer
    from queuey.storage.base import Storage

Factory = Callable[["StorageSettings", "Observer | None"], "Storage"]


def _sqlite(settings: StorageSettings, observer: Observer | None) -> Storage:
    from queuey.storage.sqlite import SqliteStorage

    return SqliteStorage(settings.path, durability=settings.durability, observer=observer)


def _memory(settings: StorageSettings, observer: Observer | None) -> Storage:
    from queuey.storage.memory import MemoryStorage

    return MemoryStorage(observer)


def _cassandra(settings: StorageSettings, observer: Observer | None) -> Storage:
    from queuey.storage.cassandra import CassandraStorage

    if settings.cassandra is None:
        raise ValueError("the cassandra back-end needs [storage] settings for Cassandra")
    return CassandraStorage(settings.cassandra, settings.metadata_keyspace, observer)


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


def make_storage(settings: StorageSettings, observer: Observer | None = None) -> Storage:
    """The back-end ``settings.backend`` names, built from ``settings``; not opened yet. An
    ``observer`` (the metrics) is told of dead-lettered and expired messages, where the
    back-end counts them (memory and SQLite), of every operation's latency and of
    redeliveries (:mod:`queuey.storage.observed`)."""
    storage = BACKENDS[settings.backend](settings, observer)
    if observer is None:
        return storage
    from queuey.storage.observed import observe

    return observe(storage, observer)
