"""The SQLite back-end: one file in WAL mode, shared by every server process on the machine.

``store`` is the back-end (:class:`SqliteStorage`); ``schema`` the tables and their version;
``connection`` the pragmas; ``reader`` the reads on the event loop; ``writer`` the group commit
and ``checkpoints`` the WAL's upkeep; ``queues``, ``messages``, ``claims`` and ``sweep`` the
statements and the writer's operations of each. docs/storage-sqlite.md explains the design.
"""

from queuey.storage.sqlite.schema import SCHEMA_VERSION
from queuey.storage.sqlite.store import SqliteStorage

__all__ = ["SCHEMA_VERSION", "SqliteStorage"]
