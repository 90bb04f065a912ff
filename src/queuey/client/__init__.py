"""The Queuey client: ``Client`` (blocking) and ``AsyncClient`` (asyncio) on httpx.

Both take the same arguments and have the same methods (``calls.py`` defines each once);
answers are the dataclasses of ``models.py``, errors the exceptions of ``errors.py``. Streams
(``stream`` over server-sent events, ``stream_socket`` over a WebSocket) are iterators that
resume after a disconnection (``streams.py``).
"""

from queuey.client.aio import AsyncClient, AsyncEventStream, AsyncSocketStream
from queuey.client.calls import QueueOptions, StreamOptions
from queuey.client.errors import (
    ApiError,
    AuthFailed,
    BadRequest,
    ClaimExpired,
    ClientError,
    Conflict,
    ConnectionFailed,
    NotFound,
    QueueExists,
    QuotaExceeded,
    ServerError,
    TooManyRequests,
    Unavailable,
)
from queuey.client.models import (
    ClaimedMessage,
    Extension,
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueSettings,
    QueueStats,
    Token,
)
from queuey.client.sync import Client, EventStream, SocketStream

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncSocketStream",
    "AuthFailed",
    "BadRequest",
    "ClaimExpired",
    "ClaimedMessage",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "EventStream",
    "Extension",
    "Message",
    "NewMessage",
    "NotFound",
    "Posted",
    "Queue",
    "QueueExists",
    "QueueOptions",
    "QueueSettings",
    "QueueStats",
    "QuotaExceeded",
    "ServerError",
    "SocketStream",
    "StreamOptions",
    "Token",
    "TooManyRequests",
    "Unavailable",
]
