"""The API's limits; each is a setting under ``[queuey]``."""

from __future__ import annotations

from dataclasses import dataclass


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
    # The longest life of a minted token, in seconds.
    max_token_ttl: int = 86_400
    # Streams (api.md "Streams (push)"): seconds between heartbeats, bytes queued for one
    # subscriber before it is cut off (broadcast), and open streams per process.
    stream_heartbeat: int = 15
    stream_buffer: int = 1_048_576
    max_streams: int = 20_000


# Fixed bounds of the work-queue parameters (api.md Part 2); not settings.
MAX_CLAIM_TTL = 43_200
MAX_CLAIM_LIMIT = 100
MAX_WAIT = 20
MAX_DEDUP_WINDOW = 86_400
MAX_DELIVERIES = 1000
MAX_DEDUP_ID = 256
