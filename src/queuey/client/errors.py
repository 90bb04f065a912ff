"""Errors the client raises: one class per kind of answer, each carrying the API's
``error_msg`` and the HTTP status."""

from __future__ import annotations

from collections.abc import Mapping


class ClientError(Exception):
    """Root of every error the client raises."""


class ConnectionFailed(ClientError):
    """No base URL could be reached (refused, unresolvable, timed out, cut off)."""


class ApiError(ClientError):
    """The server answered with an error.

    Attributes:
        status: the HTTP status.
        error_msg: the API's ``error_msg``: the offending field (or the error's name) to its
            message.
    """

    def __init__(self, status: int, error_msg: Mapping[str, str]) -> None:
        self.status = status
        self.error_msg = dict(error_msg)
        text = "; ".join(f"{key}: {message}" for key, message in self.error_msg.items())
        super().__init__(f"{status} {text}")


class BadRequest(ApiError):
    """400 (or 405, 408, 413): a parameter or the body was refused."""


class AuthFailed(ApiError):
    """401 or 403: credentials missing, unknown, or without the right for this resource."""


class QuotaExceeded(AuthFailed):
    """403 ``QuotaExceeded``: the request would take the application over one of its size
    quotas (``quota`` names it); nothing was done."""

    def __init__(self, status: int, error_msg: Mapping[str, str], quota: str) -> None:
        super().__init__(status, error_msg)
        self.quota = quota


class TooManyRequests(ApiError):
    """429 ``TooManyRequests``: the application is at one of its rate or concurrency quotas
    (``quota`` names it) on that server; try again later."""

    def __init__(self, status: int, error_msg: Mapping[str, str], quota: str) -> None:
        super().__init__(status, error_msg)
        self.quota = quota


class NotFound(ApiError):
    """404: unknown application, queue or path."""


class Conflict(ApiError):
    """409: the queue exists with other settings, or a claim is no longer current."""


class QueueExists(Conflict):
    """409 ``QueueAlreadyExists``: a queue of that name has other settings."""


class ClaimExpired(Conflict):
    """409 ``ClaimExpired``: some claims were not current. ``done`` lists the claims that were
    still acked (or extended), ``failed`` the ones that were not."""

    def __init__(
        self, status: int, error_msg: Mapping[str, str], done: list[str], failed: list[str]
    ) -> None:
        super().__init__(status, error_msg)
        self.done = done
        self.failed = failed


class Unavailable(ApiError):
    """503 on every attempt: the storage back-end did not answer in time."""


class ServerError(ApiError):
    """Any other answer that is not a success: a 5xx, or a body that is not the API's JSON."""
