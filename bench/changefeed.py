"""Do idle long polls of one application slow down another application's requests?

    .venv/bin/python bench/changefeed.py [--idle 6000] [--rate 20] [--duration 20]
        [--post-to same|other] [--backend sqlite|cassandra]
        [--server-cmd "/work/main/.venv/bin/queuey"]

Starts `queuey serve` (sqlite, or ``--backend cassandra`` on the single test node; one worker,
on 127.0.0.1) with two applications. Application ``idle`` holds ``--idle`` long polls
(``GET /v1/idle/q?wait=20``, each asked again when it returns) on that server; application
``busy`` posts ``--rate`` messages/s to its own queue and reads it ``--rate`` times/s, through
the same server (``--post-to same``) or through a second server on the same SQLite file or
Cassandra keyspaces (``other``). Prints the POST and GET latency p50/p99 of ``busy`` over
``--duration`` seconds, how many long polls returned meanwhile (a write to ``busy`` should wake
none of them), and the servers' RSS. The servers are stopped by PID at the end.
``--server-cmd`` runs another build, e.g. an older checkout's, for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import secrets
import tempfile
import time
from pathlib import Path

from run import HOST, Options, Server, default_server_cmd, say

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]


def options(server_cmd: tuple[str, ...], backend: str = "sqlite") -> Options:
    return Options(
        workers=1, backend=backend, durability="normal", duration=0, warmup=0,
        connections=0, threads=0, timeout=0, scenarios=(), queues=0, populate_limit=0,
        output=Path("/dev/null"), server_cmd=server_cmd, keep_data=False, install_wrk=False,
    )  # fmt: skip


def create_queue(port: int, key: str, app: str) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {
            "Authorization": f"Application {key}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        conn.request("POST", f"/v1/{app}", body="queue_name=q", headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise SystemExit(f"creating {app}/q answered {response.status}")
    finally:
        conn.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Connection:
    """One keep-alive HTTP/1.1 connection of a raw asyncio client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        self.writer.write(head + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def head(method: str, path: str, key: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Authorization: Application {key}"]
    if method == "POST":
        lines += ["Content-Type: text/plain", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Load:
    def __init__(self, args: argparse.Namespace, keys: dict[str, str]) -> None:
        self.args = args
        self.keys = keys
        self.stop = asyncio.Event()
        self.polls_open = 0
        self.polls_returned = 0
        self.errors: list[str] = []

    async def idle_poll(self, port: int, opening: asyncio.Semaphore) -> None:
        async with opening:
            conn = await Connection.open(port)
        request = head("GET", "/v1/idle/q?wait=20", self.keys["idle"])
        try:
            while not self.stop.is_set():
                self.polls_open += 1
                status, _ = await conn.request(request)
                self.polls_open -= 1
                self.polls_returned += 1
                if status != 200:
                    self.errors.append(f"long poll answered {status}")
        finally:
            conn.close()

    async def timed(self, port: int, method: str, started: float) -> list[float]:
        """One request every 1/rate s from ``started`` until the stop; their latencies."""
        conn = await Connection.open(port)
        body = b"x" * 140 if method == "POST" else b""
        path = "/v1/busy/q" if method == "POST" else "/v1/busy/q?limit=1"
        request = head(method, path, self.keys["busy"], body)
        latencies: list[float] = []
        period = 1 / self.args.rate
        loop = asyncio.get_running_loop()
        tick = 0
        try:
            while not self.stop.is_set():
                await asyncio.sleep(max(0.0, started + tick * period - loop.time()))
                tick += 1
                sent = loop.time()
                status, _ = await conn.request(request, body)
                latencies.append(loop.time() - sent)
                if status not in (200, 201):
                    self.errors.append(f"{method} answered {status}")
        finally:
            conn.close()
        return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


async def measure(
    args: argparse.Namespace, keys: dict[str, str], ports: tuple[int, int]
) -> dict[str, object]:
    idle_port, busy_port = ports
    load = Load(args, keys)
    opening = asyncio.Semaphore(200)
    pollers = [asyncio.create_task(load.idle_poll(idle_port, opening)) for _ in range(args.idle)]
    deadline = time.monotonic() + 120
    while load.polls_open < args.idle and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    say(f"{load.polls_open} long polls open; settling 3 s")
    await asyncio.sleep(3)
    returned = load.polls_returned
    started = asyncio.get_running_loop().time()
    timers = [asyncio.create_task(load.timed(busy_port, m, started)) for m in ("POST", "GET")]
    await asyncio.sleep(args.duration)
    load.stop.set()
    posts, gets = await asyncio.gather(*timers)
    woken = load.polls_returned - returned
    for task in pollers:
        task.cancel()
    await asyncio.gather(*pollers, return_exceptions=True)
    return {
        "idle_long_polls": args.idle,
        "rate": args.rate,
        "post_to": args.post_to,
        "posts": len(posts),
        "post_p50_ms": round(percentile(posts, 0.5), 1),
        "post_p99_ms": round(percentile(posts, 0.99), 1),
        "gets": len(gets),
        "get_p50_ms": round(percentile(gets, 0.5), 1),
        "get_p99_ms": round(percentile(gets, 0.99), 1),
        "long_polls_returned": woken,
        "errors": load.errors[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/changefeed.py", description=__doc__)
    parser.add_argument("--idle", type=int, default=6000, help="idle long polls held")
    parser.add_argument("--rate", type=float, default=20, help="posts/s and reads/s")
    parser.add_argument("--duration", type=float, default=20, help="seconds measured")
    parser.add_argument("--post-to", choices=("same", "other"), default="same")
    parser.add_argument("--backend", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument("--server-cmd", help="the queuey command (default: this checkout's)")
    args = parser.parse_args()
    server_cmd = tuple(args.server_cmd.split()) if args.server_cmd else default_server_cmd()
    keys = {"idle": secrets.token_hex(16), "busy": secrets.token_hex(16)}
    with tempfile.TemporaryDirectory(prefix="queuey-changefeed-") as tmp:
        first = Path(tmp) / "a"
        first.mkdir()
        servers = [Server(options(server_cmd, args.backend), keys, first)]
        if args.post_to == "other":  # on the same file, or the same (this process's) keyspaces
            second = Path(tmp) / "b"
            second.mkdir()
            other = Server(options(server_cmd, args.backend), keys, second)
            config = other.config_path.read_text()
            other.config_path.write_text(config.replace(str(other.data_dir), str(first / "data")))
            servers.append(other)
        try:
            for server in servers:
                server.start()
            create_queue(servers[0].port, keys["idle"], "idle")
            create_queue(servers[0].port, keys["busy"], "busy")
            ports = (servers[0].port, servers[-1].port)
            if uvloop is not None:
                uvloop.install()
            result = asyncio.run(measure(args, keys, ports))
            result["server_rss_kib"] = [rss_kib(s.proc.pid) for s in servers if s.proc is not None]
            result["server_cmd"] = " ".join(server_cmd)
        finally:
            for server in servers:
                server.stop()
    print("CHANGEFEED_JSON " + json.dumps(result), flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
