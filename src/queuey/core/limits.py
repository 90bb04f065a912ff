"""The API's limits; each is a setting under ``[queuey]``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 1_048_576
    max_batch_messages: int = 1000
    max_batch_bytes: int = 10_485_760
    default_read_limit: int = 100
    max_read_limit: int = 1000
    # The most messages, and bytes of message bodies, one read returns over all its
    # partitions; the answer names where to go on ("more").
    max_read_messages: int = 10_000
    max_read_bytes: int = 10_485_760
    default_list_limit: int = 1000
    max_list_limit: int = 10_000
    default_ttl: int = 259_200
    max_ttl: int = 33_554_432
    max_partitions: int = 200
    max_name_length: int = 64
    # Seconds a client has to send a whole request (head and body), from its first byte or,
    # on a new connection, from the connection's opening.
    request_timeout: int = 60
    # Most bytes in a request's head (request line and header fields), and most header fields;
    # more → 431 and the connection is closed.
    max_header_bytes: int = 65_536
    max_header_count: int = 100
    # The longest life of a minted token, in seconds.
    max_token_ttl: int = 86_400
    # Streams (api.md "Streams (push)"): seconds between heartbeats, bytes queued for one
    # subscriber before it is cut off (broadcast), and open streams per process.
    stream_heartbeat: int = 15
    stream_buffer: int = 1_048_576
    max_streams: int = 20_000


# The values each limit may be set to, inclusive; anything else is a configuration error.
LIMIT_RANGES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "max_message_bytes": (1, 64 << 20),
        "max_batch_messages": (1, 10_000),
        "max_batch_bytes": (1, 256 << 20),
        "default_read_limit": (1, 10_000),
        "max_read_limit": (1, 10_000),
        "max_read_messages": (1, 1_000_000),
        "max_read_bytes": (1024, 1 << 30),
        "default_list_limit": (1, 100_000),
        "max_list_limit": (1, 100_000),
        "default_ttl": (1, 630_720_000),  # 20 years, Cassandra's longest TTL
        "max_ttl": (1, 630_720_000),
        "max_partitions": (1, 255),  # a claim id holds its partition in two hex digits
        "max_name_length": (1, 255),
        "request_timeout": (1, 3600),
        "max_header_bytes": (1024, 1 << 20),
        "max_header_count": (8, 1000),
        "max_token_ttl": (60, 31_536_000),  # a year
        "stream_heartbeat": (1, 3600),
        "stream_buffer": (1024, 256 << 20),
        "max_streams": (1, 1_000_000),
    }
)

# Fixed bounds of the work-queue parameters (api.md Part 2); not settings.
MAX_CLAIM_TTL = 43_200
MAX_CLAIM_LIMIT = 100
MAX_WAIT = 20
MAX_DEDUP_WINDOW = 86_400
MAX_DELIVERIES = 1000
MAX_DEDUP_ID = 256
# Most principals a queue's ``principles`` lists.
MAX_PRINCIPLES = 100
