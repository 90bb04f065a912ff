"""The stream bench's client: raw asyncio protocols for server-sent events, NDJSON and
WebSocket subscribers, cheap enough to run a thousand of them beside the server on 2 cores.

Each subscriber is an :class:`asyncio.Protocol` (no reader task, no coroutine per read): it
writes its request, reads the response head, then decodes the chunked body (SSE, NDJSON) or
the WebSocket frames itself (RFC 6455: the handshake, unmasked server frames of any length,
pings answered with pongs, masked client frames; no extension is offered, so nothing is
compressed). A message's body is ``seq=<n>;t=<monotonic seconds>;`` and is found with one
regular expression in whatever wraps it (Queuey's JSON message object, or Nchan's bare data),
so the client decodes no JSON on the broadcast path.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import orjson

BODY = re.compile(rb"seq=(\d+);t=([0-9.]+);")
WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 1, 2, 8, 9, 10


def body(seq: int) -> bytes:
    """A message body carrying its sequence number and the client's clock at its post."""
    return b"seq=%d;t=%.6f;" % (seq, time.monotonic())


class Refused(Exception):
    """A subscriber's request was answered with another status than the one expected."""


@dataclass
class Record:
    """What one subscriber received."""

    seen: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    heartbeats: int = 0
    closed: bool = False

    def note(self, data: bytes, now: float) -> None:
        for match in BODY.finditer(data):
            self.seen.append(int(match.group(1)))
            self.latencies.append(now - float(match.group(2)))


class Subscriber(asyncio.Protocol):
    """One stream: sends ``request``, checks the status, then hands the body to ``_body``."""

    status = b"200"

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.record = Record()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._head = True
        self._buffer = b""
        self.chunked = False  # the body's transfer coding (Nchan's event streams have none)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.record.closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or Refused("closed before its answer"))

    def data_received(self, data: bytes) -> None:
        if self._head:
            data = self._buffer + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = data
                return
            self._head = False
            self._buffer = b""
            status = data.split(b" ", 2)[1]
            if status != self.status:
                self.opened.set_exception(Refused(f"answered {status.decode()}: {data[:300]!r}"))
                self.close()
                return
            self.chunked = b"\r\ntransfer-encoding: chunked\r\n" in data[: end + 2].lower()
            self.opened.set_result(None)
            data = data[end + 4 :]
            if not data:
                return
        self._body(data)

    def _body(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HttpStream(Subscriber):
    """A server-sent-event or NDJSON stream (chunked, or not: Nchan's); ``separator`` ends an
    event."""

    def __init__(self, request: bytes, separator: bytes) -> None:
        super().__init__(request)
        self.separator = separator
        self._raw = b""  # chunked encoding not decoded yet
        self._events = b""  # decoded, up to an unfinished event

    def _body(self, data: bytes) -> None:
        self._events_in(self._dechunk(data) if self.chunked else [data])

    def _dechunk(self, data: bytes) -> list[bytes]:
        raw = self._raw + data if self._raw else data
        decoded: list[bytes] = []
        at = 0
        while True:
            line_end = raw.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(raw[at:line_end].split(b";", 1)[0], 16)
            start = line_end + 2
            if size == 0:
                self.close()
                break
            if len(raw) < start + size + 2:
                break
            decoded.append(raw[start : start + size])
            at = start + size + 2
        self._raw = raw[at:]
        return decoded

    def _events_in(self, decoded: list[bytes]) -> None:
        if not decoded:
            return
        events = self._events + b"".join(decoded)
        cut = events.rfind(self.separator)
        if cut < 0:
            self._events = events
            return
        self._events = events[cut + len(self.separator) :]
        complete = events[:cut]
        record = self.record
        if BODY.search(complete) is None:
            record.heartbeats += 1
            return
        record.note(complete, time.monotonic())


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    key = os.urandom(4)
    mask = (key * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(size, "big")
    return head + key + masked


def ws_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class WebSocket(Subscriber):
    """A WebSocket stream: every text frame is handed to ``on_text``."""

    status = b"101"

    def __init__(self, request: bytes) -> None:
        super().__init__(request)
        self._frames = b""
        self._parts: list[bytes] = []
        self.close_code: int | None = None

    def _body(self, data: bytes) -> None:
        buf = self._frames + data if self._frames else data
        texts: list[bytes] = []
        at, end = 0, len(buf)
        while end - at >= 2:
            first, second = buf[at], buf[at + 1]
            size, start = second & 0x7F, at + 2
            if size == 126:
                if end - at < 4:
                    break
                size, start = int.from_bytes(buf[at + 2 : at + 4], "big"), at + 4
            elif size == 127:
                if end - at < 10:
                    break
                size, start = int.from_bytes(buf[at + 2 : at + 10], "big"), at + 10
            if end < start + size:
                break
            payload = buf[start : start + size]
            at = start + size
            opcode = first & 0x0F
            if opcode in (0, WS_TEXT, WS_BINARY):
                self._parts.append(payload)
                if first & 0x80:
                    texts.append(b"".join(self._parts))
                    self._parts = []
            elif opcode == WS_PING:
                self.send(WS_PONG, payload)
            elif opcode == WS_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.close()
                break
        self._frames = buf[at:]
        if texts:
            self.on_text(texts, time.monotonic())

    def on_text(self, texts: list[bytes], now: float) -> None:
        self.record.note(b"\n".join(texts), now)

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ws_frame(opcode, payload))


@dataclass
class Leases:
    """Round-robin deliveries of every subscriber: which message went where, and when."""

    ttl: float
    first: dict[str, float] = field(default_factory=dict)  # message id → first delivery
    acked: set[str] = field(default_factory=set)  # message ids the server said it acked
    last_ack: float = 0.0
    twice_leased: int = 0  # delivered again while an earlier lease held, or after its ack
    redelivered: int = 0  # delivered again after its lease ended
    ack_errors: list[bytes] = field(default_factory=list)


class Worker(WebSocket):
    """A round-robin WebSocket subscriber that acks what arrived together in one frame."""

    def __init__(self, request: bytes, leases: Leases) -> None:
        super().__init__(request)
        self.leases = leases
        self._claimed: dict[str, str] = {}  # claim id → message id, until its ack's answer

    def on_text(self, texts: list[bytes], now: float) -> None:
        leases = self.leases
        claims: list[str] = []
        for text in texts:
            frame = orjson.loads(text)
            if "claim_id" not in frame:  # the answer to an ack
                self._answered(frame, text, now)
                continue
            mid = frame["message_id"]
            first = leases.first.get(mid)
            if first is None:
                leases.first[mid] = now
            elif mid in leases.acked or now < first + leases.ttl:
                leases.twice_leased += 1
            else:
                leases.redelivered += 1
            self._claimed[frame["claim_id"]] = mid
            claims.append(frame["claim_id"])
            self.record.note(frame["body"].encode(), now)
        if claims:
            self.send(WS_TEXT, orjson.dumps({"ack": claims}))

    def _answered(self, frame: dict[str, object], text: bytes, now: float) -> None:
        leases = self.leases
        acked = frame.get("acked")
        if isinstance(acked, list):
            for claim in acked:
                mid = self._claimed.pop(claim, None)
                if mid is not None:
                    leases.acked.add(mid)
            leases.last_ack = now
        if frame.get("failed") or "error" in frame:
            leases.ack_errors.append(text)


async def connect(
    host: str, port: int, factory: Callable[[], Subscriber], opening: asyncio.Semaphore
) -> Subscriber:
    """Open one subscriber; returns once its answer's head arrived."""
    loop = asyncio.get_running_loop()
    async with opening:
        _, protocol = await loop.create_connection(factory, host, port)
        await protocol.opened
    return protocol
