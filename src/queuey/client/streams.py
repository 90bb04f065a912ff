"""What the streams of ``Client`` and ``AsyncClient`` share, apart from their I/O: where a
stream resumes, how its frames decode, when it reconnects, and the WebSocket handshake.

A stream (api.md "Streams") is opened like any call (fail-over to the next base URL, 503s
retried after ``Retry-After``). When it is cut (the server restarts, a proxy or the network
drops it, the server finds the subscriber too slow) it is opened again after the server's
``retry`` hint, with ``Last-Event-ID`` set to the last message received: a broadcast stream
misses nothing and repeats nothing. A stream the server ends for good (its queue deleted, its
token expired) raises the error it stands for.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from typing import Any

import httpx
import orjson
from websockets.frames import Close

from queuey.client import errors
from queuey.client.calls import Call, Payload, decode_message
from queuey.client.models import ClaimedMessage, Message
from queuey.client.servers import error

#: Seconds before a cut stream is opened again, until the server's ``retry:`` says otherwise.
DEFAULT_RETRY = 2.0
#: What the WebSocket handshake's outcome is to ``Servers.connect``: upgraded.
UPGRADED = 101
#: WebSocket close codes that end a stream for good (the others are reconnected).
_FINAL_CLOSES = {4404: (404, "QueueNotFound"), 4401: (401, "InvalidToken")}
# Request headers httpx adds that a WebSocket handshake sets itself or does not take.
_NOT_FORWARDED = frozenset({"host", "accept", "accept-encoding", "connection", "user-agent"})


class Subscription:
    """One stream's state across its connections.

    Args:
        call: the stream's request (``calls.stream``).
        retries: how many reconnections in a row may fail (no server reachable, or 503)
            before the stream raises.
    """

    def __init__(self, call: Call[None], retries: int) -> None:
        self.base = call
        self.last_event_id: str | None = (call.headers or {}).get("Last-Event-ID")
        self.retry = DEFAULT_RETRY
        self.retries = retries
        self.failures = 0
        self.closed = False  # closed by its user: no reconnection
        self._event = ""
        self._data: list[str] = []

    def call(self) -> Call[None]:
        """The request that opens (or reopens) the stream where it left off."""
        headers = dict(self.base.headers or {})
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return replace(self.base, headers=headers)

    def opened(self) -> None:
        self.failures = 0
        self._event, self._data = "", []

    def reopen_failed(self, failure: errors.ClientError) -> None:
        """A reconnection failed: raise ``failure`` unless another one may be tried."""
        if not isinstance(failure, errors.ConnectionFailed | errors.Unavailable):
            raise failure
        self.failures += 1
        if self.failures > self.retries:
            raise failure

    def message(self, payload: Payload) -> Message:
        message = decode_message(payload)
        if not isinstance(message, ClaimedMessage):  # round-robin messages are not resumed
            self.last_event_id = message.message_id
        return message

    def sse_line(self, line: str) -> Message | None:
        """Feed one line of server-sent events; the message it completes, if any."""
        if not line:
            event, data = self._event or "message", "\n".join(self._data)
            self._event, self._data = "", []
            if event == "message" and data:
                return self.message(_object(data))
            if event == "end":
                payload = _object(data)
                raise error(404, payload)
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None  # "id" is the message's own id, read from its data; ":" is a comment

    def ws_frame(self, text: str | bytes) -> Message | Payload:
        """A WebSocket frame: a message, or the reply to one of the client's frames."""
        payload = _object(text)
        return self.message(payload) if "message_id" in payload else payload

    def ws_closed(self, received: Close | None) -> None:
        """The WebSocket was closed (with the server's close frame ``received``, if any):
        raise when that ends the stream for good."""
        code, reason = (received.code, received.reason) if received else (None, "")
        if code in _FINAL_CLOSES:
            status, name = _FINAL_CLOSES[code]
            raise error(status, {"error_msg": {name: reason or "The stream ended."}})
        if code is not None and 3000 <= code < 4000:  # a refusal sent as a close code
            raise error(code - 3000, {"error_msg": {"stream": reason or "Refused."}})


def checked(reply: Payload) -> Payload:
    """The server's reply to a client frame, unless it is an error (raised)."""
    if "error" in reply:
        raise errors.BadRequest(400, {str(k): str(v) for k, v in dict(reply["error"]).items()})
    return reply


def settled(verb: str, reply: Payload) -> list[str]:
    """The claims an ``ack`` or ``extend`` frame settled, or the error its reply stands for."""
    checked(reply)
    done = [str(claim) for claim in reply.get(verb, [])]
    failed = [str(claim) for claim in reply.get("failed", [])]
    if failed:
        message = {"ClaimExpired": "A claim is no longer current."}
        raise errors.ClaimExpired(409, message, done, failed)
    return done


def handshake(request: httpx.Request, verify: ssl.SSLContext | bool, timeout: float) -> Any:
    """The arguments of ``websockets``' ``connect`` for the stream's request."""
    url = str(request.url)
    secure = url.startswith("https://")
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
    return {
        "uri": ("wss://" if secure else "ws://") + url.split("://", 1)[1],
        "additional_headers": headers,
        "user_agent_header": request.headers.get("user-agent"),
        "open_timeout": timeout,
        "max_size": None,  # the server bounds its messages
        "ssl": _ssl_context(verify) if secure else None,
    }


def refusal(status: int, headers: Any, body: bytes) -> httpx.Response:
    """A refused WebSocket handshake as the answer ``Servers.connect`` decodes."""
    return httpx.Response(status, headers=dict(headers.raw_items()), content=body)


def _ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _object(text: str | bytes) -> Payload:
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        shown = text[:200] if isinstance(text, str) else text[:200].decode(errors="replace")
        raise errors.ServerError(200, {"body": f"not a stream frame: {shown}"})
    return payload
