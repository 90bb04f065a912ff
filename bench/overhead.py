"""CPU cost of metrics and the access log on the single-POST path, measured in-process.

``.venv/bin/python bench/overhead.py [--posts 3000] [--rounds 5]`` drives the real ASGI app
(SQLite store in a temporary directory) with raw 188-byte POSTs, without HTTP parsing or
sockets, and reports CPU microseconds per POST with metrics and the access log off, metrics
on, and both on, in alternating rounds (medians). CPU time, unlike wrk's throughput, barely
moves when other processes share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import MappingProxyType
from typing import Any

from queuey.config import Settings, StorageSettings
from queuey.main import build_app

KEY = "f25bfb8fe200475c8a0532a9cbe7651e"
MODES = {"off": (False, "off"), "metrics": (True, "off"), "metrics+access log": (True, "text")}
App = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]


async def request(app: App, path: str, body: bytes, content_type: bytes) -> int:
    headers = [
        (b"authorization", f"Application {KEY}".encode()),
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
        "root_path": "",
    }  # fmt: skip
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no disconnect while the app answers
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def cost(metrics: bool, log_format: str, posts: int) -> float:
    """CPU microseconds per POST."""
    with tempfile.TemporaryDirectory() as directory, open(os.devnull, "w") as devnull:
        settings = Settings(
            application_keys=MappingProxyType({"bench": (KEY,)}),
            storage=StorageSettings(path=Path(directory)),
            metrics=metrics,
            access_log=log_format,
        )
        with contextlib.redirect_stdout(devnull):  # where the access log goes
            app: App = build_app(settings)
        started: list[dict[str, Any]] = []

        async def life_receive() -> dict[str, Any]:
            if started:
                await asyncio.Event().wait()
            return {"type": "lifespan.startup"}

        async def life_send(message: dict[str, Any]) -> None:
            started.append(message)

        lifespan = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, life_receive, life_send)
        )
        while not started:
            await asyncio.sleep(0.01)
        form = b"queue_name=q"
        assert await request(app, "/v1/bench", form, b"application/x-www-form-urlencoded") == 201
        body = b"x" * 188
        before = time.process_time()
        for _ in range(posts):
            assert await request(app, "/v1/bench/q", body, b"text/plain") == 201
        spent = time.process_time() - before
        lifespan.cancel()
        return spent / posts * 1e6


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=3000, help="POSTs per measured run")
    parser.add_argument("--rounds", type=int, default=5, help="runs per mode, alternating")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, (metrics, log_format) in MODES.items():
            results[mode].append(await cost(metrics, log_format, args.posts))
    base = statistics.median(results["off"])
    for mode, values in results.items():
        median = statistics.median(values)
        print(
            f"{mode:>20}: {median:7.1f} µs CPU per POST ({(median / base - 1) * 100:+.1f} %)"
            f"  runs: {', '.join(f'{v:.1f}' for v in values)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
