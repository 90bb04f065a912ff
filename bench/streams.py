"""Broadcast streams under load: N server-sent-event subscribers, M messages at a fixed rate.

    .venv/bin/python bench/streams.py [--subscribers 1000] [--messages 200] [--rate 20]
        [--format sse|ndjson] [--server-cmd CMD]

Starts `queuey serve` (sqlite, one worker, on 127.0.0.1), opens ``--subscribers`` streams of
one broadcast queue with a raw asyncio client (uvloop), then posts ``--messages`` messages at
``--rate`` messages/s, each body carrying its sequence number and the client's clock when it
was posted. Reports deliveries/s, publish-to-receipt latency p50/p99, lost and duplicated
deliveries (per subscriber, against what was posted) and the server's RSS before and after
the subscribers opened. The server is stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import tempfile
import time
from pathlib import Path

from changefeed import Connection, create_queue, head, options, percentile, rss_kib
from run import HOST, Server, default_server_cmd, say

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]


class Subscriber:
    """One stream: de-chunks the HTTP body and records each message's sequence number and
    how long after its post it arrived."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.latencies: list[float] = []
        self.opened = asyncio.Event()

    async def run(self, port: int, key: str, framing: str, opening: asyncio.Semaphore) -> None:
        async with opening:
            reader, writer = await asyncio.open_connection(HOST, port)
            request = (
                f"GET /v1/bench/q/stream?format={framing} HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Authorization: Application {key}\r\n\r\n"
            )
            writer.write(request.encode())
            status = (await reader.readuntil(b"\r\n")).split()[1]
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
        if status != b"200":
            raise RuntimeError(f"stream answered {status.decode()}")
        self.opened.set()
        separator = b"\n\n" if framing == "sse" else b"\n"
        pending = b""
        try:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    return
                pending += (await reader.readexactly(size + 2))[:-2]
                *events, pending = pending.split(separator)
                now = time.monotonic()
                for event in events:
                    start = event.find(b"{")
                    if start < 0:
                        continue  # a heartbeat, the retry line
                    body = json.loads(json.loads(event[start:])["body"])
                    self.seen.append(body["seq"])
                    self.latencies.append(now - body["t"])
        finally:
            writer.close()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def publish(port: int, key: str, count: int, rate: float) -> float:
    """Post ``count`` messages at ``rate`` per second; seconds it took."""
    conn = await Connection.open(port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for seq in range(count):
            await asyncio.sleep(max(0.0, started + seq / rate - loop.time()))
            body = json.dumps({"seq": seq, "t": time.monotonic()}).encode()
            status, _ = await conn.request(head("POST", "/v1/bench/q", key, body), body)
            if status != 201:
                raise RuntimeError(f"post answered {status}")
    finally:
        conn.close()
    return loop.time() - started


async def measure(args: argparse.Namespace, key: str, server: Server) -> dict[str, object]:
    assert server.proc is not None
    rss_before = rss_kib(server.proc.pid)
    subscribers = [Subscriber() for _ in range(args.subscribers)]
    opening = asyncio.Semaphore(100)
    tasks = [
        asyncio.create_task(s.run(server.port, key, args.format, opening)) for s in subscribers
    ]
    await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in subscribers)), 300)
    rss_open = rss_kib(server.proc.pid)
    say(f"{len(subscribers)} streams open; publishing")
    await asyncio.sleep(1)
    cpu = (cpu_s(server.proc.pid), resource.getrusage(resource.RUSAGE_SELF))
    took = await publish(server.port, key, args.messages, args.rate)
    expected = set(range(args.messages))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len(s.seen) < args.messages for s in subscribers):
        await asyncio.sleep(0.1)
    drained = time.monotonic() - deadline + 10
    client = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu = cpu_s(server.proc.pid) - cpu[0]
    client_cpu = client.ru_utime + client.ru_stime - cpu[1].ru_utime - cpu[1].ru_stime
    for task in tasks:
        task.cancel()
    failures = [
        r
        for r in await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)
    ]
    latencies = [x for s in subscribers for x in s.latencies]
    delivered = sum(len(s.seen) for s in subscribers)
    lost = sum(len(expected - set(s.seen)) for s in subscribers)
    duplicated = sum(len(s.seen) - len(set(s.seen)) for s in subscribers)
    return {
        "format": args.format,
        "subscribers": args.subscribers,
        "messages": args.messages,
        "rate": args.rate,
        "deliveries": delivered,
        "deliveries_per_s": round(delivered / (took + drained)),
        "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "lost": lost,
        "duplicated": duplicated,
        "seconds": round(took + drained, 1),
        "server_cpu_s": round(server_cpu, 1),
        "client_cpu_s": round(client_cpu, 1),
        "rss_kib_before": rss_before,
        "rss_kib_open": rss_open,
        "rss_kib_after": rss_kib(server.proc.pid),
        "errors": [repr(f) for f in failures[:3]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/streams.py", description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="messages posted per second")
    parser.add_argument("--format", choices=("sse", "ndjson"), default="sse")
    parser.add_argument("--server-cmd", help="the queuey command (default: this checkout's)")
    args = parser.parse_args()
    server_cmd = tuple(args.server_cmd.split()) if args.server_cmd else default_server_cmd()
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="queuey-streams-") as tmp:
        server = Server(options(server_cmd), {"bench": key}, Path(tmp))
        try:
            server.start()
            create_queue(server.port, key, "bench")
            if uvloop is not None:
                uvloop.install()
            result = asyncio.run(measure(args, key, server))
        finally:
            server.stop()
    print("STREAMS_JSON " + json.dumps(result), flush=True)
    return 1 if result["lost"] or result["duplicated"] or result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
