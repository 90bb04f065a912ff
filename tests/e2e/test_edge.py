"""The HTTP edge of a real server, on raw sockets: requests HTTP/1.1 does not allow get a JSON
400 (never a 500 or a logged traceback), request heads are bounded, unknown methods get a 405
with ``Allow``, a request gets one answer, and a client that does not read its answer is not
held on to (nor is the answer)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUTH, Server
from tests.e2e.test_limits import (
    AUTH_LINE,
    HOST,
    open_fds,
    port_of,
    read_until_closed,
    rss_kib,
    running,
    wait_for,
)

pytestmark = pytest.mark.e2e

HOST_LINE = b"Host: 127.0.0.1\r\n"


def exchange(server: Server, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` and read everything until the server closes the connection."""
    with socket.create_connection((HOST, port_of(server))) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def answers(data: bytes) -> list[tuple[int, dict[str, str], object]]:
    """The responses in ``data``: status, headers and JSON body of each."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = (line.split(": ", 1) for line in lines[1:])
        headers = {name.lower(): value for name, value in fields}
        length = int(headers.get("content-length", "0"))
        body, data = rest[:length], rest[length:]
        found.append((int(lines[0].split()[1]), headers, json.loads(body) if body else None))
    return found


def refused(server: Server, data: bytes) -> tuple[int, dict[str, str], object]:
    """The one answer to ``data``, a JSON error on a closed connection."""
    (status, headers, body), *more = answers(exchange(server, data))
    assert more == []
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert isinstance(body, dict) and body["status"] == "error", body
    return status, headers, body


def test_requests_http_does_not_allow_get_a_json_400_and_nothing_is_logged(
    tmp_path: Path,
) -> None:
    with running(tmp_path) as server:
        bad = {
            "HTTP/0.9": b"GET /v1/queuey/q\r\n\r\n",
            "no Host": b"GET /__lbheartbeat__ HTTP/1.1\r\n\r\n",
            "two Hosts": b"GET /__lbheartbeat__ HTTP/1.1\r\n" + HOST_LINE * 2 + b"\r\n",
            "identity, chunked": b"POST /v1/queuey/q HTTP/1.1\r\n" + HOST_LINE + AUTH_LINE
            + b"Transfer-Encoding: identity, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            "chunked on HTTP/1.0": b"POST /v1/queuey/q HTTP/1.0\r\n" + HOST_LINE + AUTH_LINE
            + b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        }  # fmt: skip
        for what, data in bad.items():
            status, _, _ = refused(server, data)
            assert status == 400, what
        # HTTP/1.0 needs no Host; chunked on HTTP/1.1 is fine.
        old = exchange(server, b"GET /__lbheartbeat__ HTTP/1.0\r\n\r\n")
        assert answers(old)[0][0] == 200
        chunked = exchange(
            server,
            b"POST /v1/queuey/q HTTP/1.1\r\n" + HOST_LINE + AUTH_LINE
            + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        )  # fmt: skip
        assert answers(chunked)[0][0] == 201
        assert (
            httpx.get(f"{server.url}/v1/queuey/q", headers=AUTH).json()["messages"][0]["body"]
            == "x"
        )
        server.stop()
        assert "Traceback" not in server.output()


def test_pipelined_requests_then_a_close_log_no_traceback(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        request = b"POST /v1/queuey/q HTTP/1.1\r\n" + HOST_LINE + AUTH_LINE
        request += b"Content-Length: 1\r\n\r\nx"
        for _ in range(10):
            with socket.create_connection((HOST, port_of(server))) as sock:
                sock.sendall(request * 5)
                sock.shutdown(socket.SHUT_WR)
                time.sleep(0.05)
        assert wait_for(lambda: httpx.get(f"{server.url}/__lbheartbeat__").status_code == 200, 5)
        time.sleep(0.5)
        assert "Traceback" not in server.output()
        assert "RuntimeError" not in server.output()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_methods_the_parser_does_not_know_get_the_json_405_with_allow(
    tmp_path: Path, workers: str
) -> None:
    with running(tmp_path, "--workers", workers) as server:
        patch = httpx.request("PATCH", f"{server.url}/v1/queuey/q", headers=AUTH)
        assert patch.status_code == 405
        for method in (b"FOO", b"get", b"PURGE"):
            data = method + b" /v1/queuey/q?limit=1 HTTP/1.1\r\n" + HOST_LINE
            data += b"Connection: close\r\n\r\n"
            (status, headers, body), *_ = answers(exchange(server, data))
            assert status == 405, method
            assert headers["allow"] == patch.headers["allow"], method
            assert body == patch.json(), method
        (status, _, body), *_ = answers(exchange(server, b"FOO /nowhere HTTP/1.1\r\n\r\n"))
        assert status == 404
        assert "Traceback" not in server.output()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_request_heads_are_bounded_in_bytes_and_fields(tmp_path: Path, workers: str) -> None:
    limits = {"QUEUEY_QUEUEY_MAX_HEADER_BYTES": "4096", "QUEUEY_QUEUEY_MAX_HEADER_COUNT": "20"}
    with running(tmp_path, "--workers", workers, **limits) as server:
        fields = b"".join(b"X-%d: 1\r\n" % n for n in range(18))  # with Host and Connection: 20
        fine = exchange(server, b"GET /__lbheartbeat__ HTTP/1.1\r\n" + HOST_LINE + fields
                        + b"Connection: close\r\n\r\n")  # fmt: skip
        assert answers(fine)[0][0] == 200
        status, _, body = refused(
            server, b"GET /__lbheartbeat__ HTTP/1.1\r\n" + HOST_LINE + fields * 2 + b"\r\n"
        )
        assert status == 431
        assert body == {"status": "error", "error_msg": {"headers": "More than 20 header fields"}}
        status, _, _ = refused(
            server, b"GET /__lbheartbeat__?" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n"
        )
        assert status == 431
        # A header that never ends is refused once the head is over the limit, not buffered.
        before = rss_kib(server.process.pid)
        with socket.create_connection((HOST, port_of(server))) as sock:
            sock.sendall(b"GET /__lbheartbeat__ HTTP/1.1\r\n" + HOST_LINE + b"X-Big: ")
            sent = 0
            try:
                while sent < 50 << 20:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
            except OSError:  # the server answered and closed
                pass
            answer = read_until_closed(sock, 5)
        assert answers(answer)[0][0] == 431
        assert sent < 10 << 20
        assert rss_kib(server.process.pid) - before < 20_000


def test_an_early_answer_is_the_only_answer_to_a_request_whose_body_stalls(
    tmp_path: Path,
) -> None:
    with running(tmp_path, QUEUEY_QUEUEY_REQUEST_TIMEOUT="1") as server:
        started = time.monotonic()
        wrong = b"Authorization: Application wrong\r\n"
        data = exchange(server, b"POST /v1/queuey/q HTTP/1.1\r\n" + HOST_LINE + wrong
                        + b"Content-Length: 1000\r\n\r\nabc")  # fmt: skip
        assert [status for status, _, _ in answers(data)] == [401]
        assert time.monotonic() - started < 8  # the connection was still closed in time
        # A request that gets no answer before it times out still gets the 408.
        stalled = exchange(server, b"POST /v1/queuey/q HTTP/1.1\r\n" + HOST_LINE + AUTH_LINE
                           + b"Content-Length: 1000\r\n\r\nabc")  # fmt: skip
        assert [status for status, _, _ in answers(stalled)] == [408]


def test_a_client_that_does_not_read_its_answer_is_disconnected_and_the_answer_freed(
    tmp_path: Path,
) -> None:
    with running(tmp_path, QUEUEY_QUEUEY_REQUEST_TIMEOUT="3") as server:
        body = "x" * 1_000_000
        for _ in range(20):
            posted = httpx.post(f"{server.url}/v1/queuey/q", headers=AUTH, content=body)
            assert posted.status_code == 201
        pid = server.process.pid
        fds, rss = open_fds(pid), rss_kib(pid)
        clients = []
        for _ in range(4):  # each asks for a 20 MB answer and never reads it
            sock = socket.create_connection((HOST, port_of(server)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(
                b"GET /v1/queuey/q?limit=20 HTTP/1.1\r\n" + HOST_LINE + AUTH_LINE + b"\r\n"
            )
            clients.append(sock)
        try:
            held = rss
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                held = max(held, rss_kib(pid))
                time.sleep(0.05)
            assert held - rss > 40_000  # the answers are built...
            assert wait_for(lambda: open_fds(pid) <= fds, 10)  # ...and dropped with the clients
            # most of it goes back to the system (the allocator keeps some)
            assert wait_for(lambda: rss_kib(pid) - rss < (held - rss) / 2, 5)
            answered = httpx.get(f"{server.url}/v1/queuey/q?limit=1", headers=AUTH)
            assert answered.status_code == 200
        finally:
            for sock in clients:
                sock.close()
