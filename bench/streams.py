"""Streams under load: broadcast, round-robin, idle subscribers, across processes, beside Nchan.

    .venv/bin/python bench/streams.py [--subscribers 1000] [--messages 200] [--rate 20]
        [--format sse|ndjson|ws] [--mode broadcast|roundrobin] [--credit 10] [--batch 100]
        [--idle N] [--window 30] [--heartbeat S] [--cross-process] [--against nchan]
        [--suite] [--server-cmd CMD]

Starts `queuey serve` (sqlite, one worker, on 127.0.0.1) and loads one queue's stream with a
raw asyncio client (uvloop; :mod:`streamclient`: protocols that decode the chunked body or the
WebSocket frames themselves, so the client costs little beside the server on 2 cores). Each
message body carries its sequence number and the client's clock when it was posted. Servers
(and nginx) are stopped by their PIDs at the end. Scenarios:

- broadcast (default): ``--subscribers`` streams (``--format`` sse, ndjson, or ws: a WebSocket
  by the client's own handshake and frame parser), then ``--messages`` posts at ``--rate``
  messages/s, one message a POST. Reports deliveries/s, publish-to-receipt latency p50/p99,
  lost and duplicated deliveries (per subscriber, against what was posted), server and client
  CPU seconds, and the server's RSS before the streams, with them open, and at the end.
- ``--mode roundrobin``: WebSocket subscribers (``ttl=60``, ``--credit``) that ack what arrives
  together in one ``{"ack": [...]}`` frame as soon as it arrives (every message is acked);
  messages are posted in JSON batches of ``--batch`` at ``--rate``. Reports acked messages/s,
  lost (posted, never acked), delivered twice while its lease held (or after its ack), and
  redelivered after a lease ended.
- ``--idle N``: N server-sent-event streams that receive nothing. Reports the server's RSS
  growth per stream and its CPU over ``--window`` seconds, which is all heartbeats (every
  ``--heartbeat`` seconds, the server's ``stream_heartbeat``; default 15), and how many
  heartbeats arrived. The soft limit of open files is raised to the hard one (the server
  inherits it).
- ``--cross-process``: two single-worker servers on one SQLite data directory (what
  ``queuey serve --workers 2`` is, with the kernel choosing the worker): the subscribers on
  one, the posts through the other.
- ``--against nchan``: the same broadcast (sse or ws) or idle scenario against nginx with the
  Nchan module (:mod:`nchan`, Debian ``libnginx-mod-nchan``) too, in the same run: two rows.
- ``--suite``: the short versions of every scenario (what ``make bench`` runs), each on a new
  server, then one table with the targets of issue 11 beside the figures.

A row that misses a target is marked BELOW; that does not fail the run (lost, duplicated or
refused deliveries do).
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
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from changefeed import Connection, create_queue, head, options, percentile, rss_kib
from nchan import Nchan
from run import HOST, BenchError, Server, default_server_cmd, say
from streamclient import (
    HttpStream,
    Leases,
    Subscriber,
    WebSocket,
    Worker,
    body,
    connect,
    ws_request,
)

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]

APP = "bench"
QUEUE = f"/v1/{APP}/q"
ROUNDROBIN_TTL = 60
#: Seconds the deliveries may take to arrive after the last post.
DRAIN_S = 10.0


@dataclass(frozen=True)
class Scenario:
    label: str
    format: str = "sse"
    mode: str = "broadcast"
    subscribers: int = 1000
    messages: int = 200
    rate: float = 20
    credit: int = 10
    batch: int = 100
    idle: int = 0
    window: float = 30
    heartbeat: int | None = None
    cross_process: bool = False
    against: str | None = None
    target: str = ""  # issue 11's target, as printed beside the figures
    p99_target_ms: float | None = None
    rate_target: float | None = None
    per_stream_kib_target: float | None = None


@dataclass
class Target:
    """A server under test: where subscribers connect, where posts go, what to measure."""

    name: str
    port: int
    post_port: int
    key: str
    pids: Callable[[], list[int]]

    @property
    def nchan(self) -> bool:
        return self.name == "nchan"

    def stream_request(self, scenario: Scenario) -> bytes:
        auth = {} if self.nchan else {"Authorization": f"Application {self.key}"}
        if self.nchan:
            path = "/sub"
        elif scenario.mode == "roundrobin":
            path = f"{QUEUE}/stream?mode=roundrobin&credit={scenario.credit}&ttl={ROUNDROBIN_TTL}"
        else:
            path = f"{QUEUE}/stream?format={scenario.format}"
        if scenario.format == "ws" or scenario.mode == "roundrobin":
            return ws_request(HOST, self.port, path, auth)
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{self.port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in auth.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def post_head(self, payload: bytes, batch: bool = False) -> bytes:
        if self.nchan:
            return (
                f"POST /pub HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            ).encode()
        posted = head("POST", QUEUE, self.key, payload)
        return posted.replace(b"text/plain", b"application/json") if batch else posted

    def cpu_s(self) -> float:
        return sum(cpu_s(pid) for pid in self.pids())

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Row:
    scenario: str
    server: str
    figures: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    target: str = ""
    verdict: str = ""


# --- the client's side -----------------------------------------------------------------------


async def open_subscribers(
    target: Target, scenario: Scenario, count: int, factory: Callable[[bytes], Subscriber]
) -> tuple[list[Subscriber], list[str]]:
    """``count`` subscribers of the target's stream, opened 200 at a time; and the refusals."""
    opening = asyncio.Semaphore(200)
    request = target.stream_request(scenario)
    results = await asyncio.gather(
        *(connect(HOST, target.port, lambda: factory(request), opening) for _ in range(count)),
        return_exceptions=True,
    )
    opened = [r for r in results if isinstance(r, Subscriber)]
    refused = [repr(r) for r in results if not isinstance(r, Subscriber)]
    return opened, refused


async def publish(target: Target, count: int, rate: float, batch: int = 1) -> float:
    """Post ``count`` messages at ``rate`` per second, ``batch`` a request (a JSON batch when
    more than one); seconds it took."""
    conn = await Connection.open(target.post_port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for first in range(0, count, batch):
            await asyncio.sleep(max(0.0, started + first / rate - loop.time()))
            seqs = range(first, min(count, first + batch))
            if batch == 1:
                payload = body(first)
            else:
                items = [{"body": body(seq).decode()} for seq in seqs]
                payload = json.dumps({"messages": items}).encode()
            status, answer = await conn.request(target.post_head(payload, batch > 1), payload)
            if status not in (200, 201, 202):
                raise BenchError(f"post answered {status}: {answer[:200]!r}")
    finally:
        conn.close()
    return loop.time() - started


async def wait_until(done: Callable[[], bool], seconds: float) -> float:
    """Wait until ``done()`` or ``seconds`` passed; the seconds waited."""
    started = time.monotonic()
    while not done() and time.monotonic() - started < seconds:
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def latency_figures(latencies: list[float]) -> dict[str, object]:
    return {
        "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
    }


async def broadcast(target: Target, scenario: Scenario) -> Row:
    row = Row(scenario.label, target.name)
    rss_before = target.rss_kib()

    def factory(request: bytes) -> Subscriber:
        if scenario.format == "ws":
            return WebSocket(request)
        return HttpStream(request, b"\n\n" if scenario.format == "sse" else b"\n")

    subscribers, refused = await open_subscribers(target, scenario, scenario.subscribers, factory)
    row.problems += refused[:3]
    rss_open = target.rss_kib()
    say(f"  {len(subscribers)} streams open on {target.name}; publishing")
    await asyncio.sleep(1)
    cpu = (target.cpu_s(), client_cpu_s())
    took = await publish(target, scenario.messages, scenario.rate)
    records = [s.record for s in subscribers]
    drained = await wait_until(
        lambda: all(len(r.seen) >= scenario.messages or r.closed for r in records), DRAIN_S
    )
    server_cpu, client_cpu = target.cpu_s() - cpu[0], client_cpu_s() - cpu[1]
    for subscriber in subscribers:
        subscriber.close()
    expected = set(range(scenario.messages))
    delivered = sum(len(r.seen) for r in records)
    lost = sum(len(expected - set(r.seen)) for r in records) + len(refused) * scenario.messages
    duplicated = sum(len(r.seen) - len(set(r.seen)) for r in records)
    closed = sum(r.closed and len(r.seen) < scenario.messages for r in records)
    if lost or duplicated:
        row.problems.append(f"{lost} lost, {duplicated} duplicated deliveries")
    if closed:
        row.problems.append(f"{closed} streams closed early")
    row.figures = {
        "subscribers": scenario.subscribers,
        "messages": scenario.messages,
        "rate": scenario.rate,
        "deliveries": delivered,
        "deliveries_per_s": round(delivered / (took + drained)),
        **latency_figures([x for r in records for x in r.latencies]),
        "lost": lost,
        "duplicated": duplicated,
        "seconds": round(took + drained, 1),
        "server_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "rss_kib_before": rss_before,
        "rss_kib_open": rss_open,
        "rss_kib_after": target.rss_kib(),
    }
    p99 = row.figures["p99_ms"]
    if scenario.p99_target_ms is not None and isinstance(p99, float):
        row.verdict = "ok" if p99 <= scenario.p99_target_ms else "BELOW"
    return row


async def roundrobin(target: Target, scenario: Scenario) -> Row:
    row = Row(scenario.label, target.name)
    leases = Leases(ROUNDROBIN_TTL)
    subscribers, refused = await open_subscribers(
        target, scenario, scenario.subscribers, lambda request: Worker(request, leases)
    )
    row.problems += refused[:3]
    say(f"  {len(subscribers)} round-robin streams open on {target.name}; publishing")
    await asyncio.sleep(1)
    cpu = (target.cpu_s(), client_cpu_s())
    started = time.monotonic()
    await publish(target, scenario.messages, scenario.rate, scenario.batch)
    await wait_until(lambda: len(leases.acked) >= scenario.messages, DRAIN_S)
    server_cpu, client_cpu = target.cpu_s() - cpu[0], client_cpu_s() - cpu[1]
    for subscriber in subscribers:
        subscriber.close()
    acked = len(leases.acked)
    took = (leases.last_ack or time.monotonic()) - started
    lost = scenario.messages - acked
    if lost or leases.twice_leased:
        row.problems.append(f"{lost} lost, {leases.twice_leased} delivered twice under a lease")
    row.problems += [f"ack answered {e[:200]!r}" for e in leases.ack_errors[:3]]
    row.figures = {
        "subscribers": scenario.subscribers,
        "credit": scenario.credit,
        "messages": scenario.messages,
        "rate": scenario.rate,
        "acked": acked,
        "acked_per_s": round(acked / took) if took > 0 else None,
        **latency_figures([x for s in subscribers for x in s.record.latencies]),
        "lost": lost,
        "twice_leased": leases.twice_leased,
        "redelivered": leases.redelivered,
        "seconds": round(took, 1),
        "server_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "rss_kib_after": target.rss_kib(),
    }
    rate = row.figures["acked_per_s"]
    if scenario.rate_target is not None and isinstance(rate, int):
        row.verdict = "ok" if rate >= scenario.rate_target else "BELOW"
    return row


async def idle(target: Target, scenario: Scenario) -> Row:
    row = Row(scenario.label, target.name)
    rss_before = target.rss_kib()
    subscribers, refused = await open_subscribers(
        target, scenario, scenario.idle, lambda request: HttpStream(request, b"\n\n")
    )
    row.problems += refused[:3]
    await asyncio.sleep(2)  # what the opening left behind (pending writes) settles
    rss_open = target.rss_kib()
    say(f"  {len(subscribers)} idle streams open on {target.name}; {scenario.window:g}s window")
    records = [s.record for s in subscribers]
    beats = sum(r.heartbeats for r in records)
    cpu = (target.cpu_s(), client_cpu_s())
    await asyncio.sleep(scenario.window)
    server_cpu, client_cpu = target.cpu_s() - cpu[0], client_cpu_s() - cpu[1]
    beats = sum(r.heartbeats for r in records) - beats
    closed = sum(r.closed for r in records)
    for subscriber in subscribers:
        subscriber.close()
    if closed:
        row.problems.append(f"{closed} idle streams closed during the window")
    per_stream = (rss_open - rss_before) / max(1, len(subscribers))
    row.figures = {
        "subscribers": len(subscribers),
        "rss_kib_before": rss_before,
        "rss_kib_open": rss_open,
        "rss_kib_per_stream": round(per_stream, 2),
        "window_s": scenario.window,
        "heartbeats": beats,
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_pct": round(100 * server_cpu / scenario.window, 2),
        "cpu_us_per_heartbeat": round(1e6 * server_cpu / beats, 1) if beats else None,
        "client_cpu_s": round(client_cpu, 2),
    }
    if scenario.per_stream_kib_target is not None:
        row.verdict = "ok" if per_stream <= scenario.per_stream_kib_target else "BELOW"
    return row


# --- the servers -----------------------------------------------------------------------------


def raise_file_limit() -> int:
    """Open files: the soft limit raised to the hard one (the servers started inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextmanager
def queuey(scenario: Scenario, server_cmd: tuple[str, ...], tmp: Path) -> Iterator[Target]:
    """A queuey server (two on one data directory with ``cross_process``) with the queue."""
    key = secrets.token_hex(16)
    first = Server(options(server_cmd, "sqlite"), {APP: key}, tmp)
    if scenario.heartbeat is not None:
        extra = f"[queuey]\nstream_heartbeat = {scenario.heartbeat}\n"
        first.config_path.write_text(first.config_path.read_text() + extra)
    servers = [first]
    if scenario.cross_process:
        (tmp / "second").mkdir()
        second = Server(options(server_cmd, "sqlite"), {APP: key}, tmp / "second")
        second.config_path = first.config_path  # the same data directory
        servers.append(second)
    try:
        for server in servers:
            server.start()
        create_queue(first.port, key, APP)

        def pids() -> list[int]:
            return [s.proc.pid for s in servers if s.proc is not None]

        yield Target("queuey", first.port, servers[-1].port, key, pids)
    finally:
        for server in servers:
            server.stop()


@contextmanager
def nchan(scenario: Scenario, files: int, tmp: Path) -> Iterator[Target]:
    server = Nchan(tmp / "nchan", files, scenario.heartbeat or 15)
    try:
        server.start()
        yield Target("nchan", server.port, server.port, "", lambda: server.pids)
    finally:
        server.stop()


def run_loop(work: Coroutine[None, None, Row]) -> Row:
    return uvloop.run(work) if uvloop is not None else asyncio.run(work)


def run_scenario(scenario: Scenario, server_cmd: tuple[str, ...], files: int) -> list[Row]:
    """The scenario against Queuey, then against Nchan when asked: one row each."""
    measure = roundrobin if scenario.mode == "roundrobin" else idle if scenario.idle else broadcast
    rows: list[Row] = []
    for name in ("queuey", scenario.against):
        if name is None:
            continue
        with tempfile.TemporaryDirectory(prefix="queuey-streams-") as tmp:
            try:
                with (
                    queuey(scenario, server_cmd, Path(tmp))
                    if name == "queuey"
                    else nchan(scenario, files, Path(tmp))
                ) as target:
                    row = run_loop(measure(target, scenario))
            except BenchError as error:
                row = Row(scenario.label, name, problems=[str(error)])
        if name != "queuey":  # the targets are Queuey's
            row.verdict = ""
        else:
            row.target = scenario.target
        say(f"STREAMS_JSON {json.dumps(row.__dict__)}")
        rows.append(row)
    return rows


# --- the suite and the table -----------------------------------------------------------------

SUITE = (
    Scenario(
        "broadcast SSE 1,000 x 20/s", messages=100, against="nchan",
        target="every delivery, p99 <= 100 ms", p99_target_ms=100,
    ),
    Scenario(
        "broadcast SSE 1,000 x 100/s", messages=300, rate=100, against="nchan",
        target="every delivery (Nchan: p99 910 ms)",
    ),
    Scenario(
        "broadcast WebSocket 1,000 x 20/s", format="ws", messages=100, against="nchan",
        target="p99 <= 100 ms", p99_target_ms=100,
    ),
    Scenario(
        "round-robin WebSocket 100, credit 10", mode="roundrobin", subscribers=100,
        messages=20_000, rate=20_000, target=">= 10,000 acked/s, none lost or twice",
        rate_target=10_000,
    ),
    Scenario(
        "idle SSE 10,000", idle=10_000, window=15, heartbeat=5,
        target="<= 10 KiB RSS a stream", per_stream_kib_target=10,
    ),
    Scenario(
        "cross-process SSE 1,000 x 20/s", messages=100, cross_process=True,
        target="p99 <= 100 ms", p99_target_ms=100,
    ),
)  # fmt: skip

COLUMNS = (
    ("scenario", 38), ("server", 7), ("rate/s", 9), ("p50 ms", 7), ("p99 ms", 7), ("lost", 5),
    ("twice", 5), ("RSS KiB", 9), ("CPU s", 6), ("target", 36), ("", 5),
)  # fmt: skip


def table(rows: list[Row]) -> list[str]:
    def cells(row: Row) -> list[str]:
        f = row.figures
        rate = f.get("deliveries_per_s", f.get("acked_per_s"))
        rss = f.get("rss_kib_per_stream", f.get("rss_kib_after"))
        twice = f.get("duplicated", f.get("twice_leased"))
        shown = [
            row.scenario, row.server,
            f"{rate:,}" if isinstance(rate, int) else "-",
            *(str(f.get(k, "-")) for k in ("p50_ms", "p99_ms", "lost")),
            str(twice if twice is not None else "-"),
            f"{rss}/stream" if "rss_kib_per_stream" in f else str(rss or "-"),
            str(f.get("server_cpu_s", "-")), row.target,
            "FAIL" if row.problems else row.verdict,
        ]  # fmt: skip
        return shown

    lines = ["  ".join(name.ljust(width) for name, width in COLUMNS)]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, (_, w) in zip(cells(row), COLUMNS, strict=True)))
        lines += [f"    !! {p}" for p in row.problems]
        if "heartbeats" in row.figures:
            f = row.figures
            lines.append(
                f"    {f['heartbeats']:,} heartbeats in {f['window_s']:g}s: server CPU "
                f"{f['server_cpu_pct']}% of a core, {f['cpu_us_per_heartbeat']} us a heartbeat"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bench/streams.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="messages posted per second")
    parser.add_argument("--format", choices=("sse", "ndjson", "ws"), default="sse")
    parser.add_argument("--mode", choices=("broadcast", "roundrobin"), default="broadcast")
    parser.add_argument("--credit", type=int, default=10, help="round-robin credit")
    parser.add_argument("--batch", type=int, default=100, help="round-robin: messages a post")
    parser.add_argument("--idle", type=int, default=0, help="idle streams (the idle scenario)")
    parser.add_argument("--window", type=float, default=30, help="idle: seconds measured")
    parser.add_argument("--heartbeat", type=int, help="the server's stream_heartbeat, seconds")
    parser.add_argument("--cross-process", action="store_true")
    parser.add_argument("--against", choices=("nchan",), help="the same run against Nchan too")
    parser.add_argument("--suite", action="store_true", help="every scenario, short, and a table")
    parser.add_argument("--server-cmd", help="the queuey command (default: this checkout's)")
    args = parser.parse_args()
    if args.against and (args.mode == "roundrobin" or args.cross_process):
        parser.error("--against nchan compares broadcast and idle streams")
    if args.against and args.format == "ndjson":
        parser.error("--against nchan: --format sse or ws")
    if args.mode == "roundrobin" and args.format not in ("sse", "ws"):
        parser.error("--mode roundrobin streams over WebSockets")
    if min(args.subscribers, args.messages, args.credit, args.batch) < 1 or args.rate <= 0:
        parser.error("--subscribers, --messages, --credit, --batch and --rate must be positive")
    server_cmd = tuple(args.server_cmd.split()) if args.server_cmd else default_server_cmd()
    files = raise_file_limit()
    if args.suite:
        scenarios = list(SUITE)
    else:
        scenarios = [
            Scenario(
                "idle" if args.idle else args.mode, format="ws" if args.mode == "roundrobin"
                else args.format, mode=args.mode, subscribers=args.subscribers,
                messages=args.messages, rate=args.rate, credit=args.credit, batch=args.batch,
                idle=args.idle, window=args.window, heartbeat=args.heartbeat,
                cross_process=args.cross_process, against=args.against,
            )
        ]  # fmt: skip
        scenarios = [replace(s, label=describe(s)) for s in scenarios]
    rows: list[Row] = []
    for scenario in scenarios:
        say(f"== {scenario.label}")
        rows += run_scenario(scenario, server_cmd, files)
    say("")
    for line in table(rows):
        say(line)
    return 1 if any(row.problems for row in rows) else 0


def describe(s: Scenario) -> str:
    if s.idle:
        return f"idle SSE {s.idle:,}"
    kind = "WebSocket" if s.format == "ws" else s.format.upper()
    where = "cross-process " if s.cross_process else ""
    if s.mode == "roundrobin":
        return f"round-robin {kind} {s.subscribers:,}, credit {s.credit}"
    return f"{where}{s.mode} {kind} {s.subscribers:,} x {s.rate:g}/s"


if __name__ == "__main__":
    raise SystemExit(main())
