"""Domain errors. The HTTP layer maps each class to a status in one table (api/errors.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuey.core.models import Queue


class QueueyError(Exception):
    """Root of every error Queuey raises on purpose."""

    key = "QueueyError"
    message = "Error"
    #: More fields of the error response, beside ``status`` and ``error_msg``.
    details: dict[str, object] = {}  # noqa: RUF012 (never mutated; instances replace it)
    #: Seconds a client should wait before it tries again (``Retry-After``), where that helps.
    retry_after: int | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.errors: dict[str, str] = {self.key: message or self.message}


class InvalidRequest(QueueyError):
    """One or more parameters are invalid; ``errors`` maps each field to its message."""

    key = "InvalidParameter"
    message = "Invalid parameter."

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


class InvalidParameter(QueueyError):
    key = "InvalidParameter"
    message = "Unable to properly deserialize JSON body."


class InvalidMessageID(QueueyError):
    key = "InvalidMessageID"
    message = "Invalid message id's."


class InvalidUpdate(QueueyError):
    key = "InvalidUpdate"
    message = "Partitions can only be increased."


class PayloadTooLarge(InvalidRequest):
    """A message or request body is over the configured limit."""


class IncompleteBody(QueueyError):
    """The client stopped sending the request body (it went away, or took too long)."""

    key = "body"
    message = "The request body was not received completely."


class Unauthorized(QueueyError):
    """No credentials where they are needed."""

    key = "Unauthorized"
    message = "An application key is required: Authorization: Application <key>"


class InvalidApplicationKey(QueueyError):
    key = "InvalidApplicationKey"
    message = "Invalid application key"


class InvalidToken(InvalidApplicationKey):
    """A token that is expired, forged, unverifiable or not for this application."""

    key = "InvalidToken"
    message = "The token is expired, invalid or not for this application."


class Forbidden(QueueyError):
    """Valid credentials that lack the right for this resource."""

    key = "Forbidden"
    message = "Access was denied to this resource."


class NotFound(QueueyError):
    key = "NotFound"
    message = "The resource could not be found."


class ApplicationNotFound(NotFound):
    key = "InvalidApplication"
    message = "Application of that name was not found."


class QueueNotFound(NotFound):
    key = "InvalidQueueName"
    message = "Queue of that name was not found."


class MethodNotAllowed(QueueyError):
    key = "MethodNotAllowed"
    message = "Method not allowed on this resource."

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(f"Allowed methods: {', '.join(allowed)}")
        self.allowed = allowed


class Conflict(QueueyError):
    key = "Conflict"
    message = "Conflict."


class QueueExists(Conflict):
    """A queue of that name exists: ``existing`` is that queue, as the store found it when the
    creation failed (None when it could not tell)."""

    key = "QueueAlreadyExists"
    message = "Queue of that name already exists."

    def __init__(self, existing: Queue | None = None) -> None:
        super().__init__()
        self.existing = existing


class ClaimExpired(Conflict):
    """Some claims of an ack or extension were not current; ``details`` lists which were
    done and which failed."""

    key = "ClaimExpired"
    message = (
        "A claim is no longer current: its lease ended, or the message was acknowledged or "
        "claimed again."
    )

    def __init__(self, details: dict[str, object]) -> None:
        super().__init__()
        self.details = details


class TooManyStreams(QueueyError):
    """This server process holds ``max_streams`` open streams; another one may take it."""

    key = "max_streams"
    message = "This server holds as many streams as it may; retry later or elsewhere."
    retry_after = 1


class QuotaExceeded(QueueyError):
    """The request would take the application over one of its size quotas (stored bytes,
    stored messages, queues); nothing was done. ``details`` names the quota and its value."""

    key = "QuotaExceeded"
    message = "The application is over one of its quotas."

    def __init__(self, quota: str, limit: int, reason: str) -> None:
        super().__init__(f"Over the application's quota {quota} ({limit}): {reason}")
        self.details = {"quota": quota, "limit": limit}


class TooManyRequests(QueueyError):
    """The application is at one of its rate or concurrency quotas (post rate, long polls,
    streams) in this server process; retrying after ``retry_after`` seconds may work."""

    key = "TooManyRequests"
    message = "The application is at one of its rate or concurrency quotas."

    def __init__(self, quota: str, limit: int, reason: str, retry_after: int = 1) -> None:
        super().__init__(f"At the application's quota {quota} ({limit}): {reason}")
        self.details = {"quota": quota, "limit": limit}
        self.retry_after = retry_after


class StorageUnavailable(QueueyError):
    """The storage back-end cannot serve the request now; retrying later may work."""

    key = "storage"
    message = "Back-end storage unavailable."
    retry_after = 1
