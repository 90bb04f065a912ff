"""The Queuey client: ``Client`` (blocking) and ``AsyncClient`` (asyncio) on httpx.

Both take the same arguments and have the same methods (``calls.py`` defines each once);
answers are the dataclasses of ``models.py``, errors the exceptions of ``errors.py``.
"""

from queuey.client.aio import AsyncClient
from queuey.client.calls import QueueOptions
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
)
from queuey.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthFailed",
    "BadRequest",
    "ClaimExpired",
    "ClaimedMessage",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
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
    "TooManyRequests",
    "Unavailable",
]
