"""Per-application quotas: the settings of ``[quotas]`` (every application) and
``[application_quotas]`` (one application's own); 0 is off, the default for each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Quotas:
    # Sizes (over → 403 QuotaExceeded): live messages and their bodies' bytes (UTF-8), over all
    # of an application's queues, and how many queues it has.
    max_stored_bytes: int = 0
    max_stored_messages: int = 0
    max_queues: int = 0
    # Concurrency, per server process (over → 429 with Retry-After): reads and claims waiting
    # (``wait`` above 0), and open streams.
    max_long_polls: int = 0
    max_streams: int = 0
    # Messages posted per second, per server process (a token bucket holding ``post_burst``
    # messages, ``post_rate`` when 0; over → 429 with Retry-After).
    post_rate: int = 0
    post_burst: int = 0

    @property
    def measured(self) -> bool:
        """Whether stored usage must be measured (a stored bytes or messages quota is on)."""
        return bool(self.max_stored_bytes or self.max_stored_messages)


QUOTA_NAMES = tuple(f.name for f in fields(Quotas))


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    """Every application's quotas, the applications' own, and the seconds between two
    measurements of an application's stored messages and bytes."""

    every: Quotas = field(default_factory=lambda: Quotas())
    applications: Mapping[str, Quotas] = field(default_factory=lambda: MappingProxyType({}))
    measure_interval: float = 10.0

    def of(self, app: str) -> Quotas:
        return self.applications.get(app, self.every)


# The values each quota may be set to, inclusive (0: off).
QUOTA_RANGES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "max_stored_bytes": (0, 1 << 50),  # a pebibyte
        "max_stored_messages": (0, 1_000_000_000_000),
        "max_queues": (0, 100_000),  # counted by listing the names at each creation
        "max_long_polls": (0, 1_000_000),
        "max_streams": (0, 1_000_000),
        "post_rate": (0, 10_000_000),
        "post_burst": (0, 100_000_000),
    }
)
# Seconds between two measurements of an application's stored messages and bytes.
MEASURE_INTERVAL_RANGE = (1.0, 3600.0)


def body_bytes(body: str) -> int:
    """The bytes of a body in UTF-8 (without encoding an ASCII one)."""
    return len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class Usage:
    """What an application stores: its live (unexpired) messages, delayed and claimed ones
    included, and the bytes of their bodies."""

    messages: int = 0
    bytes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.messages + other.messages, self.bytes + other.bytes)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.messages - other.messages, self.bytes - other.bytes)

    @classmethod
    def of(cls, bodies: Iterable[str]) -> Usage:
        """The usage of messages with these bodies."""
        messages = size = 0
        for body in bodies:
            messages += 1
            size += body_bytes(body)
        return cls(messages, size)
