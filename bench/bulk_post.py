"""``queuey post`` bulk rate: messages/s posting stdin line by line to a real server.

    .venv/bin/python bench/bulk_post.py [--lines 1000000] [--batch-size 1000] \
        [--backend sqlite] [--workers 1]

Starts ``queuey serve`` on 127.0.0.1 (bench/run.py's server: its own config and data
directory), writes ``--lines`` lines of 100 bytes to a file, and times
``queuey post bench --batch-size N < file`` (the CLI batches the lines into POSTs of N
messages). Then checks that the queue holds every line, and prints one JSON line: lines,
seconds, messages/s, and the CPU seconds the ``queuey post`` process used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import run

KEY = "f25bfb8fe200475c8a0532a9cbe7651e"


def children_cpu() -> float:
    """CPU seconds (user and system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--backend", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    args = parser.parse_args()
    options = dataclasses.replace(run.parse_args([]), backend=args.backend, workers=args.workers)
    with tempfile.TemporaryDirectory(prefix="queuey-bench-post-") as temporary:
        work = Path(temporary)
        lines = work / "lines.txt"
        with lines.open("wb") as out:
            for start in range(0, args.lines, 10_000):
                count = min(10_000, args.lines - start)
                padding = b"x" * 84
                out.write(b"".join(b"line %09d %s\n" % (start + i, padding) for i in range(count)))
        server = run.Server(options, {"bench": KEY}, work)
        if server.setup_error:
            print(server.setup_error, file=sys.stderr)
            return 1
        server.start()
        try:
            url = f"http://{run.HOST}:{server.port}/v1/bench"
            auth = {"Authorization": f"Application {KEY}"}
            httpx.post(url, data={"queue_name": "bench"}, headers=auth).raise_for_status()
            command = [str(Path(sys.executable).with_name("queuey")), "post", "bench",
                       "--batch-size", str(args.batch_size), "--json"]  # fmt: skip
            env = {**os.environ, "QUEUEY_URL": url, "QUEUEY_KEY": KEY}
            started, cpu = time.monotonic(), children_cpu()
            with lines.open("rb") as stdin:
                done = subprocess.run(command, stdin=stdin, capture_output=True, env=env)
            seconds, client_cpu = time.monotonic() - started, children_cpu() - cpu
            if done.returncode != 0:
                print(done.stderr.decode(), file=sys.stderr)
                return done.returncode
            stats = httpx.get(f"{url}/bench/stats", headers=auth).json()["stats"]
        finally:
            server.stop()
    posted = json.loads(done.stdout)["posted"]
    result = {
        "lines": args.lines, "posted": posted, "stored": stats.get("messages"),
        "batch_size": args.batch_size, "backend": args.backend, "workers": args.workers,
        "seconds": round(seconds, 2), "messages_per_s": round(posted / seconds, 1),
        "client_cpu_s": round(client_cpu, 2),
    }  # fmt: skip
    print(json.dumps(result))
    return 0 if posted == args.lines == stats.get("messages") else 1


if __name__ == "__main__":
    sys.exit(main())
