"""Servers for the client, CLI and example tests: a real ``queuey serve``, and a scripted stub
for answers a real server does not give on demand (503, garbage)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.e2e.conftest import KEY, Server, start_server

OTHER_KEY = "0123456789abcdef0123456789abcdef"


@contextmanager
def running_server(directory: Path) -> Iterator[Server]:
    """``queuey serve`` on SQLite with two applications: ``queuey`` (KEY) and ``other``."""
    config = directory / "queuey.ini"
    config.write_text(
        f"[application_keys]\nqueuey = {KEY}\nother = {OTHER_KEY}\n\n"
        f"[storage]\nbackend = sqlite\npath = {directory / 'data'}\n"
    )
    server = start_server(directory, ["--config", str(config)])
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def two_servers(directory: Path) -> Iterator[tuple[Server, Server]]:
    """Two ``queuey serve`` on one SQLite store: a stream cut on one resumes on the other."""
    with running_server(directory) as first:
        second = start_server(directory, ["--config", str(directory / "queuey.ini")])
        try:
            yield first, second
        finally:
            second.stop()


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b'{"status": "ok"}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


UNAVAILABLE = b'{"status": "error", "error_msg": {"storage": "Back-end storage unavailable."}}'


class Stub:
    """An HTTP server on 127.0.0.1 that gives the scripted answers in order (the last one
    again once the script is used up) and records each request as ``(method, path)``."""

    def __init__(self, answers: Sequence[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.requests.append((self.command, self.path))
                answer = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    headers = {"Content-Type": "application/json", **answer.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/queuey"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
