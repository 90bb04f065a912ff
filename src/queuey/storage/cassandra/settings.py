"""The Cassandra back-end's settings (read from ``[storage]`` and ``[metadata]`` by
:mod:`queuey.config`). Imports nothing from the driver: the config loads it for every back-end."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PORT = 9042


@dataclass(frozen=True, slots=True)
class CassandraSettings:
    hosts: tuple[tuple[str, int], ...] = (("localhost", DEFAULT_PORT),)
    username: str | None = None
    password: str | None = None
    keyspace: str = "MessageStore"
    multi_dc: bool = False
    create_schema: bool = True
    base_delay: int = 0
    replication_factor: int = 1
    # Per data centre factors (NetworkTopologyStrategy); empty: replication_factor alone.
    replication: tuple[tuple[str, int], ...] = ()
    local_dc: str | None = None
    connect_timeout: float = 5.0
    request_timeout: float = 10.0
