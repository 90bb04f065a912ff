"""CPU cost of metrics and the access log on the single-POST path, as paired comparisons.

``.venv/bin/python bench/overhead.py [--rounds 400] [--posts 25]`` builds the real ASGI app
three times in one process, each with its SQLite store in a temporary directory of its own:
metrics and access log off, metrics on, both on. It drives them with raw 188-byte POSTs,
without HTTP parsing or sockets, in short blocks: each round runs one block per app, in an
order that rotates from round to round; every app gets the same warm-up and the same number of
POSTs, so their stores grow alike. It reports the CPU time of the event loop's thread per POST
(the storage's checkpoint threads, alike for every app, would land in whichever block runs
beside them): each app's mean, and for each app against the one with both off the median of
the rounds' relative differences, with their interquartile range and a bootstrap 95 %
interval of that median. CPU time, unlike wrk's throughput, moves little when other
processes share the machine, and the blocks of one round, a few milliseconds apart, share
what still moves it.

``--server`` instead runs ``bench/run.py --scenarios post`` (a real ``queuey serve`` loaded by
wrk on loopback) in the same three configurations, set through ``QUEUEY_QUEUEY_METRICS`` and
``QUEUEY_QUEUEY_ACCESS_LOG``, in rotating order, and reports the median over rounds of each
one's relative difference to the run with both off in its round: msgs/s, and the server's
CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from queuey.config import Settings, StorageSettings
from queuey.main import build_app, tune_gc

BENCH_DIR = Path(__file__).resolve().parent
KEY = "f25bfb8fe200475c8a0532a9cbe7651e"
#: name -> (metrics, access log format); the first is the baseline of the comparisons.
MODES = {"off": (False, "off"), "metrics": (True, "off"), "metrics+access log": (True, "text")}
BOOTSTRAP_SAMPLES = 2000
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


class Target:
    """One app, started, with its own SQLite directory and one queue to post to."""

    def __init__(self, metrics: bool, log_format: str, directory: Path) -> None:
        settings = Settings(
            application_keys=MappingProxyType({"bench": (KEY,)}),
            storage=StorageSettings(path=directory),
            metrics=metrics,
            access_log=log_format,
            sweep_interval=3600,  # no sweep lands in another app's block
        )
        self.app: App = build_app(settings)
        self._lifespan: asyncio.Task[None] | None = None

    async def start(self) -> None:
        started: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if started:
                await asyncio.Event().wait()
            return {"type": "lifespan.startup"}

        async def send(message: dict[str, Any]) -> None:
            started.append(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self._lifespan = asyncio.create_task(self.app(scope, receive, send))
        while not started:
            await asyncio.sleep(0.01)
        form = b"queue_name=q"
        assert (
            await request(self.app, "/v1/bench", form, b"application/x-www-form-urlencoded") == 201
        )

    async def post(self, posts: int) -> float:
        """CPU seconds of the event loop's thread over ``posts`` POSTs."""
        body = b"x" * 188
        app = self.app
        before = time.thread_time()
        for _ in range(posts):
            assert await request(app, "/v1/bench/q", body, b"text/plain") == 201
        return time.thread_time() - before

    def stop(self) -> None:
        if self._lifespan is not None:
            self._lifespan.cancel()


def rotations(names: Sequence[str], rounds: int) -> list[list[str]]:
    """Each round's order: the names rotated by one more each round, so that every name
    comes first, second, ... equally often."""
    return [[*names[r % len(names) :], *names[: r % len(names)]] for r in range(rounds)]


async def in_process(rounds: int, posts: int, warmup: int) -> dict[str, list[float]]:
    """Per mode, the CPU µs per POST of its block in each round."""
    with contextlib.ExitStack() as stack:
        devnull = stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(contextlib.redirect_stdout(devnull))  # where the access log goes
        targets = {
            mode: Target(
                metrics, log_format, Path(stack.enter_context(tempfile.TemporaryDirectory()))
            )
            for mode, (metrics, log_format) in MODES.items()
        }
        for target in targets.values():
            await target.start()
        tune_gc()  # as `queuey serve` does once its app is built
        for _ in range(-(-warmup // posts)):  # whole blocks
            for target in targets.values():
                await target.post(posts)
        results: dict[str, list[float]] = {mode: [] for mode in MODES}
        for order in rotations(list(MODES), rounds):
            for mode in order:
                results[mode].append(await targets[mode].post(posts) / posts * 1e6)
        for target in targets.values():
            target.stop()
        return results


@dataclass(frozen=True)
class Paired:
    """The per-round relative differences of a mode against the baseline, in %."""

    median: float
    q1: float
    q3: float
    low: float  # bootstrap 95 % interval of the median
    high: float

    @classmethod
    def of(cls, base: Sequence[float], other: Sequence[float]) -> Paired:
        diffs = [(o / b - 1) * 100 for b, o in zip(base, other, strict=True)]
        q1, _, q3 = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else (diffs * 3)
        rng = random.Random(0)
        medians = sorted(
            statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(BOOTSTRAP_SAMPLES)
        )
        low = medians[int(BOOTSTRAP_SAMPLES * 0.025)]
        high = medians[int(BOOTSTRAP_SAMPLES * 0.975) - 1]
        return cls(statistics.median(diffs), q1, q3, low, high)

    def __str__(self) -> str:
        return (
            f"{self.median:+5.1f} % (IQR {self.q1:+.1f} .. {self.q3:+.1f}, "
            f"95 % CI of the median {self.low:+.1f} .. {self.high:+.1f})"
        )


def report_in_process(results: dict[str, list[float]], posts: int) -> None:
    base = results["off"]
    print(
        f"CPU µs per POST (of the event loop's thread), {len(base)} rounds of one "
        f"{posts}-POST block per app; mean, then the rounds' paired differences:"
    )
    for mode, values in results.items():
        line = f"{mode:>20}: {statistics.fmean(values):7.1f} µs"
        if values is not base:
            line += f"  vs off: {Paired.of(base, values)}"
        print(line)


# --- the real server, loaded by wrk ------------------------------------------------------

#: name -> environment of `queuey serve` (bench/run.py's defaults: metrics and text log on).
SERVER_MODES = {
    "off": {"QUEUEY_QUEUEY_METRICS": "false", "QUEUEY_QUEUEY_ACCESS_LOG": "off"},
    "metrics": {"QUEUEY_QUEUEY_METRICS": "true", "QUEUEY_QUEUEY_ACCESS_LOG": "off"},
    "metrics+access log": {"QUEUEY_QUEUEY_METRICS": "true", "QUEUEY_QUEUEY_ACCESS_LOG": "text"},
}


def server_run(mode: str, duration: int, output: Path) -> tuple[float, float]:
    """One `bench/run.py --scenarios post` run: msgs/s and the server's CPU µs per message."""
    env = {**os.environ, **SERVER_MODES[mode]}
    command = [
        sys.executable, str(BENCH_DIR / "run.py"), "--scenarios", "post", "--duration",
        str(duration), "--warmup", "1", "--no-install", "--output", str(output),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"bench/run.py failed ({mode}):\n{done.stdout[-2000:]}{done.stderr}")
    row = json.loads(output.read_text())["results"][0]
    rate = float(row["rate"])
    return rate, row["cpu_cores"].get("server", 0.0) / rate * 1e6


def server(rounds: int, duration: int) -> None:
    rates: dict[str, list[float]] = {mode: [] for mode in SERVER_MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in SERVER_MODES}
    with tempfile.TemporaryDirectory() as directory:
        for n, order in enumerate(rotations(list(SERVER_MODES), rounds), 1):
            for mode in order:
                rate, per_message = server_run(mode, duration, Path(directory) / "post.json")
                rates[mode].append(rate)
                cpu[mode].append(per_message)
                print(f"round {n}: {mode}: {rate:,.0f} msgs/s, server {per_message:.1f} µs CPU/msg")
    print(f"bench/run.py --scenarios post, {rounds} rounds of {duration} s per configuration:")
    for mode in SERVER_MODES:
        line = (
            f"{mode:>20}: {statistics.median(rates[mode]):7,.0f} msgs/s, "
            f"server {statistics.median(cpu[mode]):6.1f} µs CPU/msg"
        )
        if mode != "off":
            line += (
                f"  paired vs off: msgs/s {Paired.of(rates['off'], rates[mode])}; "
                f"CPU/msg {Paired.of(cpu['off'], cpu[mode])}"
            )
        print(line)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rounds", type=int, help="blocks per app (default 400), or --server runs each (default 4)"
    )
    parser.add_argument("--posts", type=int, default=25, help="POSTs per block (default 25)")
    parser.add_argument(
        "--warmup", type=int, default=2000, help="POSTs per app before measuring (default 2000)"
    )
    parser.add_argument(
        "--server", action="store_true", help="compare real servers with bench/run.py instead"
    )
    parser.add_argument(
        "--duration", type=int, default=5, help="--server: seconds per run (default 5)"
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 4 if args.server else 400
    if min(args.rounds, args.posts, args.duration) < 1 or args.warmup < 0:
        parser.error("--rounds, --posts and --duration must be >= 1, --warmup >= 0")
    if args.server:
        server(args.rounds, args.duration)
    else:
        report_in_process(asyncio.run(in_process(args.rounds, args.posts, args.warmup)), args.posts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
