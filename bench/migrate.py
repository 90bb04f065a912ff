"""``queuey migrate`` rate, SQLite to Cassandra: messages/s of the copy.

    .venv/bin/python bench/migrate.py [--messages 1000000] [--queues 10000] \
        [--hosts 127.0.0.1:9042] [--workers 16] [--no-verify] [--keep]

Builds a SQLite store in a temporary directory (``--queues`` queues of application ``bench``,
``--messages`` messages spread evenly over them, 100-byte bodies, a day to live), then times
``queuey migrate --from <that store> --to <Cassandra>`` as a subprocess. The target is a pair of
keyspaces of its own on the given Cassandra node (``queuey_bench_migrate_*``, dropped before
the run and, unless ``--keep``, after it). Prints one JSON line: the build time, the copy's
messages, seconds and rate (from the command's own summary), the seconds of copy and
verification together and the CPU seconds the command used in them, and whether both sides
matched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import drop_keyspaces

from queuey.core.clock import SystemClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Message, QueueSettings
from queuey.storage.sqlite import SqliteStorage

KEYSPACE = "queuey_bench_migrate_messages"
METADATA_KEYSPACE = "queuey_bench_migrate_metadata"
DAY_MS = 86_400_000
BODY = "x" * 92


async def build(directory: Path, queues: int, messages: int) -> None:
    """The source store: ``messages`` over ``queues`` queues, written a queue at a time."""
    store = SqliteStorage(directory)
    await store.open()
    clock = SystemClock()
    ids = IdGenerator(clock)
    try:
        per_queue, extra = divmod(messages, queues)
        for q in range(queues):
            queue = await store.create_queue("bench", f"queue-{q:06}", QueueSettings(), time.time())
            expires = clock.time_ns() // 1_000_000 + DAY_MS
            batch = []
            for i in range(per_queue + (q < extra)):
                message_id, ticks = ids.next()
                batch.append(Message(message_id, ticks, 1, f"{BODY}{i:08}", "text/plain", expires))
            for start in range(0, len(batch), 1000):
                await store.write_messages(queue, batch[start : start + 1000], fresh=True)
    finally:
        await store.close()


def children_cpu() -> float:
    """CPU seconds (user and system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--hosts", default="127.0.0.1:9042")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the Cassandra keyspaces")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="queuey-bench-migrate-") as temporary:
        work = Path(temporary)
        started = time.monotonic()
        asyncio.run(build(work / "source", args.queues, args.messages))
        built = time.monotonic() - started
        source, target = work / "source.ini", work / "target.ini"
        source.write_text(f"[storage]\nbackend = sqlite\npath = {work / 'source'}\n")
        target.write_text(
            f"[storage]\nbackend = cassandra\nhost = {args.hosts}\npath = {work}\n"
            f"database = {KEYSPACE}\n\n[metadata]\nbackend = cassandra\n"
            f"database = {METADATA_KEYSPACE}\n"
        )
        drop_keyspaces(args.hosts, (KEYSPACE, METADATA_KEYSPACE))
        command = [
            str(Path(sys.executable).with_name("queuey")), "migrate", "--from", str(source),
            "--to", str(target), "--checkpoint", str(work / "checkpoint"), "--json",
            "--workers", str(args.workers), *(["--no-verify"] if args.no_verify else []),
        ]  # fmt: skip
        started, cpu = time.monotonic(), children_cpu()
        done = subprocess.run(command, capture_output=True, text=True)
        total, migrate_cpu = time.monotonic() - started, children_cpu() - cpu
        if not args.keep:
            drop_keyspaces(args.hosts, (KEYSPACE, METADATA_KEYSPACE))
        if done.returncode not in (0, 5):
            print(done.stderr, file=sys.stderr)
            return done.returncode
        summary = json.loads(done.stdout)
        result = {
            "messages": args.messages, "queues": args.queues, "build_s": round(built, 1),
            "copied": summary["copied"], "copy_s": summary["seconds"],
            "messages_per_s": summary["rate"], "workers": args.workers,
            "copy_and_verify_s": round(total, 1), "migrate_cpu_s": round(migrate_cpu, 1),
            "verified": None if args.no_verify else not summary["mismatches"],
        }  # fmt: skip
        print(json.dumps(result))
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
