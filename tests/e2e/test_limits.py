"""Limits on a real server: oversized bodies are refused early without being buffered, stalled
or slow clients are timed out and their connections closed, and 10,000 idle connections do not
stop the server from answering others (what it holds meanwhile is printed; see
docs/benchmarks.md)."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUTH, KEY, Server, start_server, write_config

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
AUTH_LINE = f"Authorization: Application {KEY}\r\n".encode()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def running(tmp_path: Path, *args: str, **env: str) -> Iterator[Server]:
    """A server of ``write_config``'s settings, with ``args`` on its command line."""
    server = start_server(tmp_path, ["--config", str(write_config(tmp_path)), *args], env=env)
    try:
        created = httpx.post(f"{server.url}/v1/queuey", headers=AUTH, data={"queue_name": "q"})
        assert created.status_code == 201
        yield server
    finally:
        server.stop()


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def stored(server: Server) -> list[str]:
    read = httpx.get(f"{server.url}/v1/queuey/q", headers=AUTH)
    return [m["body"] for m in read.json()["messages"]]


def wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_stalled_and_slow_clients_get_408_and_their_connections_are_closed(
    tmp_path: Path,
) -> None:
    with running(tmp_path, QUEUEY_QUEUEY_REQUEST_TIMEOUT="1") as server:
        pid, port = server.process.pid, port_of(server)
        baseline = open_fds(pid)
        post = b"POST /v1/queuey/q HTTP/1.1\r\nHost: x\r\n" + AUTH_LINE
        stalls = {
            "nothing sent": b"",
            "head cut off": b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n",
            "body cut off": post + b"Content-Length: 100\r\n\r\nonly part of it",
            "chunked body cut off": post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nstart\r\n",
        }
        sockets = {}
        for name, data in stalls.items():
            sockets[name] = socket.create_connection((HOST, port))
            sockets[name].sendall(data)
        slow = socket.create_connection((HOST, port))  # a head a byte at a time
        stop = threading.Event()

        def trickle() -> None:
            with contextlib.suppress(OSError):
                for byte in b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n" * 10:
                    if stop.wait(0.1):
                        return
                    slow.send(bytes([byte]))

        trickler = threading.Thread(target=trickle)
        trickler.start()
        started = time.monotonic()
        # Meanwhile the server answers others at once.
        assert httpx.get(f"{server.url}/__lbheartbeat__", timeout=0.5).status_code == 200
        try:
            for name, sock in [*sockets.items(), ("slow head", slow)]:
                answer = read_until_closed(sock, timeout=5)
                assert answer.startswith(b"HTTP/1.1 408 "), (name, answer)
                assert b"connection: close" in answer, name
            assert time.monotonic() - started < 3
        finally:
            stop.set()
            trickler.join()
            for sock in [*sockets.values(), slow]:
                sock.close()
        assert wait_for(lambda: open_fds(pid) <= baseline, 3), (open_fds(pid), baseline)
        assert stored(server) == []  # nothing of the cut-off bodies was stored


def send_until_answered(sock: socket.socket, chunk: bytes, most: int) -> tuple[int, bytes]:
    """Send ``chunk`` after ``chunk`` until the server answers (or ``most`` bytes are sent);
    the bytes sent and the answer."""
    sent = 0
    while sent < most:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent, read_until_closed(sock, timeout=5)


def test_worker_processes_apply_the_request_timeout_too(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    env = {"QUEUEY_QUEUEY_REQUEST_TIMEOUT": "1"}
    server = start_server(tmp_path, ["--config", config, "--workers", "2"], env=env)
    try:
        started = time.monotonic()
        with socket.create_connection((HOST, port_of(server))) as sock:
            sock.sendall(b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n")  # never finished
            answer = read_until_closed(sock, timeout=10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < 5  # the setting's 1 s, not the default 60 s
    finally:
        server.stop()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_413_early_and_never_buffered(
    tmp_path: Path, declared: bool
) -> None:
    with running(tmp_path) as server:
        pid, port = server.process.pid, port_of(server)
        rss_before = rss_kib(pid)
        huge = 1 << 30  # 1 GiB, 1024 times the 1 MiB limit
        piece = b"x" * 65536
        with socket.create_connection((HOST, port)) as sock:
            head = b"POST /v1/queuey/q HTTP/1.1\r\nHost: x\r\n" + AUTH_LINE
            if declared:
                sock.sendall(head + f"Content-Length: {huge}\r\n\r\n".encode())
                chunk = piece
            else:
                sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            sent, answer = send_until_answered(sock, chunk, most=256 << 20)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"connection: close" in answer
        assert sent < 64 << 20, sent  # answered after the limit, not after the body
        growth = rss_kib(pid) - rss_before
        assert growth < 16 * 1024, f"RSS grew by {growth} KiB"
        assert stored(server) == []


def test_ten_thousand_idle_connections_do_not_stop_the_server_answering_others(
    tmp_path: Path,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    count = min(10_000, hard - 1_000)
    assert count >= 1_000, f"RLIMIT_NOFILE hard limit {hard} is too low"
    idle: list[socket.socket] = []
    try:
        with running(tmp_path, QUEUEY_QUEUEY_REQUEST_TIMEOUT="600") as server:
            pid, port = server.process.pid, port_of(server)
            rss_before, fds_before = rss_kib(pid), open_fds(pid)
            started = time.monotonic()
            for _ in range(count):
                idle.append(socket.create_connection((HOST, port), timeout=10))
            assert wait_for(lambda: open_fds(pid) >= fds_before + count, 60)
            opened_in = time.monotonic() - started
            rss_held, fds_held = rss_kib(pid), open_fds(pid)

            latencies: list[float] = []
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as http:
                for i in range(50):
                    begin = time.perf_counter()
                    assert http.post("/v1/queuey/q", content=f"m{i}".encode()).status_code == 201
                    assert http.get("/v1/queuey/q", params={"limit": "1"}).status_code == 200
                    latencies.append(time.perf_counter() - begin)
            p50, worst = statistics.median(latencies), max(latencies)
            print(
                f"\n{count} idle connections (opened in {opened_in:.1f} s): server RSS "
                f"{rss_before / 1024:.1f} -> {rss_held / 1024:.1f} MiB "
                f"(+{(rss_held - rss_before) / count:.2f} KiB each), fds {fds_before} -> "
                f"{fds_held}; another client's POST+GET: p50 {p50 * 1000:.2f} ms, "
                f"max {worst * 1000:.2f} ms"
            )
            assert worst < 1.0
            for sock in idle:
                sock.close()
            idle.clear()
            assert wait_for(lambda: open_fds(pid) <= fds_before + 10, 20)
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
