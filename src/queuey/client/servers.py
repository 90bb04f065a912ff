"""The servers a client talks to: base URLs, credentials, fail-over and retries.

``Servers.exchange`` is the whole conversation of one call, written once for both clients: a
generator that yields ``(delay, request)`` steps and is sent each request's outcome (a response
or the transport error). The clients only sleep and send.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Generator, Sequence
from typing import Any, TypeVar

import httpx
import orjson

from queuey import __version__
from queuey.client import errors
from queuey.client.calls import Call

T = TypeVar("T")
Outcome = httpx.Response | httpx.TransportError
Step = tuple[float, httpx.Request]
Exchange = Generator[Step, Outcome, T]

# Errors raised before the request reached the server: sending it elsewhere is always safe.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
_APP_PATH = re.compile(r"(?P<root>.*)/v1/(?P<app>[A-Za-z0-9_.-]{1,64})/?")


class Servers:
    """Base URLs, credentials, and how a call moves between the URLs (the arguments are
    the client's: see ``base.Api``)."""

    def __init__(
        self,
        urls: str | Sequence[str],
        key: str | None = None,
        app: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        max_retry_delay: float = 10.0,
    ) -> None:
        bases = urls.split(",") if isinstance(urls, str) else urls
        split = [_split(url.strip()) for url in bases if url.strip()]
        if not split:
            raise ValueError("no base URL given")
        named = {name for _, name in split if name} | ({app} if app else set())
        if len(named) != 1:
            raise ValueError(
                "name one application: end the URLs in /v1/<app> or pass app"
                if not named
                else f"the URLs and app name different applications: {', '.join(sorted(named))}"
            )
        self.roots = tuple(root for root, _ in split)
        self.app = named.pop()
        self.current = 0
        self.timeout = timeout
        self.retries = retries
        self.max_retry_delay = max_retry_delay
        self.headers = {"User-Agent": f"queuey-client/{__version__}"}
        if key:
            self.headers["Authorization"] = f"Application {key}"

    @property
    def url(self) -> str:
        """The application's URL on the server in use."""
        return f"{self.roots[self.current]}/v1/{self.app}"

    def request(self, call: Call[Any]) -> httpx.Request:
        if call.path.startswith("/"):
            url = self.roots[self.current] + call.path.replace("{app}", self.app)
        else:
            url = f"{self.url}/{call.path}" if call.path else self.url
        timeout = httpx.Timeout(self.timeout, read=self.timeout + call.wait)
        headers = {**self.headers, **(call.headers or {})}
        return httpx.Request(
            call.method, url, params=call.query, headers=headers, content=call.content,
            data=call.form, extensions={"timeout": timeout.as_dict()},
        )  # fmt: skip

    def exchange(self, call: Call[T]) -> Exchange[T]:
        """One call: yields ``(delay, request)``, is sent what came of it, returns the decoded
        answer or raises the client error it stands for."""
        response = yield from self.attempts(call)
        return answer(call, response.status_code, response.content)

    def connect(self, call: Call[Any]) -> Exchange[httpx.Response]:
        """A stream's opening: as ``exchange``, but returns the answer itself when its status
        is one of ``call.statuses`` (its body still to be read)."""
        response = yield from self.attempts(call)
        if response.status_code not in call.statuses:
            answer(call, response.status_code, response.content)  # raises the error
        return response

    def attempts(self, call: Call[Any]) -> Exchange[httpx.Response]:
        """The requests of one call, moving to the next base URL when one refuses the
        connection and retrying 503s; returns the answer that is not tried again."""
        refused: list[str] = []
        retries = self.retries if call.retry else 0
        delay = 0.0
        while True:
            outcome = yield delay, self.request(call)
            delay = 0.0
            if isinstance(outcome, NOT_SENT):
                refused.append(f"{self.roots[self.current]}: {_describe(outcome)}")
                if len(refused) == len(self.roots):
                    raise errors.ConnectionFailed("; ".join(refused)) from outcome
                self._next()
            elif isinstance(outcome, httpx.TransportError):
                where = self.roots[self.current]
                raise errors.ConnectionFailed(f"{where}: {_describe(outcome)}") from outcome
            elif outcome.status_code == 503 and retries > 0:
                retries -= 1
                refused.clear()
                delay = self.retry_delay(outcome)
                self._next()
            else:
                return outcome

    def retry_delay(self, response: httpx.Response) -> float:
        """The answer's ``Retry-After`` (seconds or an HTTP date), capped; 1 s without one."""
        value = response.headers.get("Retry-After", "").strip()
        if not value:
            return min(1.0, self.max_retry_delay)
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = 1.0
        if not math.isfinite(seconds):
            seconds = self.max_retry_delay
        return max(0.0, min(seconds, self.max_retry_delay))

    def _next(self) -> None:
        self.current = (self.current + 1) % len(self.roots)


def answer(call: Call[T], status: int, content: bytes) -> T:
    """The decoded answer, or the error it stands for."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):  # a proxy's error page, or not a Queuey server at all
        text = content[:200].decode(errors="replace").strip() or "(no body)"
        error_msg = {"body": f"not a Queuey answer: {text}"}
        if status in call.statuses:
            raise errors.ServerError(status, error_msg)
        raise error(status, {"error_msg": error_msg})
    if status not in call.statuses:
        raise error(status, payload)
    try:
        return call.decode(payload)
    except (KeyError, TypeError, ValueError) as missing:
        raise errors.ServerError(status, {"body": f"unexpected answer: {missing!r}"}) from None


def error(status: int, payload: dict[str, Any]) -> errors.ApiError:
    error_msg = payload.get("error_msg")
    if not isinstance(error_msg, dict):
        error_msg = {"status": f"unexpected answer {status}"}
    error_msg = {str(key): str(value) for key, value in error_msg.items()}
    if status == 409 and "ClaimExpired" in error_msg:
        done = payload.get("acked", payload.get("extended", payload.get("released", [])))
        return errors.ClaimExpired(status, error_msg, list(done), list(payload.get("failed", [])))
    if status == 409 and "QueueAlreadyExists" in error_msg:
        return errors.QueueExists(status, error_msg)
    if (status, "QuotaExceeded") == (403, next(iter(error_msg), "")) or status == 429:
        quota = str(payload.get("quota", ""))
        kind = errors.TooManyRequests if status == 429 else errors.QuotaExceeded
        return kind(status, error_msg, quota)
    return _ERRORS.get(status, errors.ServerError)(status, error_msg)


_ERRORS: dict[int, type[errors.ApiError]] = {
    400: errors.BadRequest,
    405: errors.BadRequest,
    408: errors.BadRequest,
    413: errors.BadRequest,
    401: errors.AuthFailed,
    403: errors.AuthFailed,
    404: errors.NotFound,
    409: errors.Conflict,
    503: errors.Unavailable,
}


def _split(url: str) -> tuple[str, str | None]:
    """A base URL as (server root, application or None)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    url = url.rstrip("/")
    match = _APP_PATH.fullmatch(url)
    if match:
        return match["root"], match["app"]
    return url, None


def _describe(error: httpx.TransportError) -> str:
    """The error's kind and message (``ReadTimeout: timed out``)."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
