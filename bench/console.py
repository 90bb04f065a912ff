"""The web console's first paint with many queues, in Chromium driven by Playwright.

Run from the repository root: `.venv/bin/python bench/console.py [--queues 1000000]`. It
creates the queues once (through the storage contract, in .bench/console/data, reused by
later runs), starts `queuey serve` on 127.0.0.1 on that data, and measures in the system
Chromium, several times:

- first paint: from navigation to the first page of queues listed (a signed-in tab: the
  key is in its session storage), as the page's own clock (`performance.now()`, which starts
  at navigation) and as Playwright saw it;
- filter: from submitting a name prefix that lies deep in the list to its first page listed.

The goal is a first paint within 1 s. Results go to .bench/console/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from queuey.core.models import QueueSettings
from queuey.storage.sqlite import SqliteStorage

REPO_DIR = Path(__file__).resolve().parent.parent
APP = "bench"
KEY = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5"
GOAL_MS = 1000.0
PAGE_ROWS = 25  # the console's default page


def queue_name(index: int) -> str:
    return f"q{index:07d}"


async def seed(directory: Path, count: int, batch: int = 2000) -> float:
    """Create queues q0000000.. up to ``count`` (the ones missing); seconds taken."""
    storage = SqliteStorage(directory, durability="normal")
    await storage.open()
    started = time.monotonic()
    try:
        present = await storage.list_queue_names(APP, queue_name(count - 1), 1)
        if present == [queue_name(count - 1)]:
            return 0.0
        settings, now = QueueSettings(), time.time()
        existing = set(await storage.list_queue_names(APP, None, count))
        for low in range(0, count, batch):
            names = [queue_name(i) for i in range(low, min(low + batch, count))]
            await asyncio.gather(
                *(storage.create_queue(APP, n, settings, now) for n in names if n not in existing)
            )
            if low % 100_000 == 0:
                print(f"  {low:,} queues after {time.monotonic() - started:.0f} s", flush=True)
    finally:
        await storage.close()
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(workdir: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "queuey.ini"
    config.write_text(
        f"[application_keys]\n{APP} = {KEY}\n\n[storage]\nbackend = sqlite\npath = {data}\n"
    )
    port = free_port()
    log = (workdir / "server.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "queuey",
        "serve",
        "--port",
        str(port),
        "--config",
        str(config),
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/__lbheartbeat__", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not answer; see {workdir / 'server.log'}")


def first_paint(page: Page, url: str) -> tuple[float, float]:
    """Milliseconds from navigation to the first page of queues: the page's clock, Playwright's."""
    started = time.perf_counter()
    page.goto(f"{url}/console/", wait_until="commit")
    page.locator("#queue-rows tr").nth(PAGE_ROWS - 1).wait_for(state="attached")
    seen = (time.perf_counter() - started) * 1000
    in_page: float = page.evaluate("performance.now()")
    return in_page, seen


def filtered(page: Page, prefix: str) -> float:
    """Milliseconds from submitting a prefix to its first page listed."""
    page.fill("#filter-prefix", prefix)
    started = time.perf_counter()
    page.click("#filter-form button[type=submit]")
    # (Playwright's own waiting: the page's policy forbids the eval of wait_for_function.)
    expect(page.locator("#queue-rows th").first).to_have_text(re.compile(f"^{prefix}"))
    return (time.perf_counter() - started) * 1000


def measure(url: str, chromium: str, runs: int, count: int) -> dict[str, list[float]]:
    session = json.dumps({"app": APP, "scheme": "Application", "secret": KEY})
    results: dict[str, list[float]] = {"first_paint_page": [], "first_paint_seen": [], "filter": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for run in range(runs):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(
                f"sessionStorage.setItem('queuey.console.session', {json.dumps(session)})"
            )
            page = context.new_page()
            in_page, seen = first_paint(page, url)
            results["first_paint_page"].append(in_page)
            results["first_paint_seen"].append(seen)
            deep = queue_name(count * (run + 1) // (runs + 1))[:-2]  # 100 names deep in the list
            results["filter"].append(filtered(page, deep))
            context.close()
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=REPO_DIR / ".bench" / "console")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install -y chromium (the browser tests do it)")
    data = args.workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    print(f"seeding {args.queues:,} queues in {data}", flush=True)
    seeded_s = asyncio.run(seed(data, args.queues))
    process, url = serve(args.workdir, data)
    try:
        results = measure(url, chromium, args.runs, args.queues)
    finally:
        process.terminate()
        process.wait(timeout=30)
    summary: dict[str, Any] = {"queues": args.queues, "runs": args.runs, "seed_s": seeded_s}
    for name, values in results.items():
        summary[name] = {
            "median_ms": round(statistics.median(values), 1),
            "max_ms": round(max(values), 1),
            "all_ms": [round(v, 1) for v in values],
        }
    paint = summary["first_paint_seen"]["median_ms"]
    summary["goal_ms"] = GOAL_MS
    summary["met"] = paint <= GOAL_MS
    (args.workdir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
