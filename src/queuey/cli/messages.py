"""``queuey post`` (one message, or stdin line by line in batches) and ``queuey read``."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from rich.progress import (
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from queuey.cli.common import (
    CommandFailed,
    Commands,
    ExitCode,
    Output,
    add_command,
    numbers,
    table,
)
from queuey.client import Client, Message, NewMessage, Posted, errors

MAX_BATCH = 1000  # the API's limit per batch
ToItem = Callable[[str], NewMessage | str]  # a line's text as an item of a batch
# Bodies per batch, leaving room under the API's default 10 MiB request limit for the JSON.
MAX_BATCH_BYTES = 8 * 1024 * 1024


def add_parsers(commands: Commands) -> None:
    post = add_command(
        commands, "post", "post a message, or each line of stdin as a message", post_messages
    )
    post.add_argument("queue")
    post.add_argument("body", nargs="?", help="the message (default: one per line of stdin)")
    post.add_argument("--ttl", type=int, help="seconds to keep it (the queue's default)")
    post.add_argument("--partition", type=int, help="partition (default: a random one)")
    post.add_argument("--delay", type=int, help="seconds before it becomes visible")
    post.add_argument("--content-type", help="stored with the message (text/plain)")
    post.add_argument("--dedup-id", help="post it once per dedup window (one message only)")
    post.add_argument(
        "--batch-size", type=int, default=MAX_BATCH, help=f"lines per request (at most {MAX_BATCH})"
    )
    read = add_command(commands, "read", "read messages (never removes them)", read_messages)
    read.add_argument("queue")
    read.add_argument("--since", help="a timestamp or message id to start at (inclusive)")
    read.add_argument("--after", help="a message id to start after")
    read.add_argument("--order", choices=("ascending", "descending"))
    read.add_argument("--limit", type=int, help="at most this many per partition (100)")
    read.add_argument("--partitions", type=numbers, help="comma-separated (default: 1)")
    read.add_argument("--wait", type=int, help="seconds to wait for a message (long poll)")


def post_messages(client: Client, args: argparse.Namespace, out: Output) -> None:
    if args.body is not None:
        posted = client.post(
            args.queue, args.body, ttl=args.ttl, partition=args.partition, delay=args.delay,
            dedup_id=args.dedup_id, content_type=args.content_type,
        )  # fmt: skip
        out.show(posted, lambda: _posted_table([posted]))
        return
    if args.dedup_id is not None or not 1 <= args.batch_size <= MAX_BATCH:
        out.errors.print(
            f"queuey: --dedup-id needs a single message, and --batch-size is 1 to {MAX_BATCH}",
            markup=False,
        )
        raise CommandFailed(ExitCode.USAGE)
    if sys.stdin.isatty():
        out.errors.print("queuey: posting each line you type; end with Ctrl-D", markup=False)
    options = {"ttl": args.ttl, "partition": args.partition, "delay": args.delay,
               "content_type": args.content_type}  # fmt: skip
    to_item: ToItem = str  # a plain body takes the queue's defaults, and is quicker to send
    if any(option is not None for option in options.values()):
        to_item = functools.partial(NewMessage, **options)
    count = _post_lines(client, args.queue, sys.stdin.buffer, to_item, args.batch_size, out)
    out.show({"posted": count}, lambda: f"posted {count} messages to {args.queue}")


def _post_lines(
    client: Client, queue: str, lines: BinaryIO, to_item: ToItem, size: int, out: Output
) -> int:
    """Post every non-empty line as a message, ``size`` at a time, in order; how many."""
    posted = 0
    progress = Progress(
        SpinnerColumn(), TextColumn("posted {task.completed:,.0f} messages"),
        TaskProgressColumn(show_speed=True), TimeElapsedColumn(),
        console=out.errors, disable=not out.errors.is_terminal,
    )  # fmt: skip
    first_line = 1
    try:
        with progress:
            task = progress.add_task("post", total=None)
            for line, batch in _batches(lines, to_item, size, out):
                first_line = line
                client.post_batch(queue, batch)
                posted += len(batch)
                progress.advance(task, len(batch))
    except (errors.ClientError, KeyboardInterrupt) as stopped:
        # A refused batch stored nothing; after a failure or a lost connection, who knows.
        refused = isinstance(stopped, errors.ApiError) and stopped.status < 500
        fate = "was not stored" if refused else "may not be stored"
        out.errors.print(
            f"queuey: posted {posted} messages; the batch from line {first_line} on {fate}:",
            markup=False,
        )
        raise
    return posted


def _batches(
    lines: BinaryIO, to_item: ToItem, size: int, out: Output
) -> Iterator[tuple[int, list[NewMessage | str]]]:
    """(line number of the first, messages) for each batch of the lines of ``lines``."""
    batch: list[NewMessage | str] = []
    first = weight = 0
    for number, body, length in _bodies(lines, out):
        if batch and (len(batch) == size or weight + length > MAX_BATCH_BYTES):
            yield first, batch
            batch, weight = [], 0
        if not batch:
            first = number
        batch.append(to_item(body))
        weight += length
    if batch:
        yield first, batch


def _bodies(lines: BinaryIO, out: Output) -> Iterator[tuple[int, str, int]]:
    """(line number, text, length in bytes) of each non-empty line."""
    for number, line in enumerate(lines, 1):
        text = line.rstrip(b"\r\n")
        if not text:
            continue
        try:
            yield number, text.decode("utf-8"), len(text)
        except UnicodeDecodeError:
            out.errors.print(f"queuey: line {number} is not UTF-8 text", markup=False)
            raise CommandFailed(ExitCode.USAGE) from None


def _posted_table(posted: Iterable[Posted]) -> object:
    rows = ((p.ref, p.timestamp, "yes" if p.duplicate else "") for p in posted)
    return table(("message", "timestamp", "duplicate"), rows)


def read_messages(client: Client, args: argparse.Namespace, out: Output) -> None:
    found = client.read(
        args.queue, since=args.since, after=args.after, order=args.order, limit=args.limit,
        partitions=args.partitions, wait=args.wait,
    )  # fmt: skip
    out.show(found, lambda: message_table(found))


def message_table(found: Iterable[Message], *extra: str) -> object:
    """Messages as a table: their ``partition:id``, timestamp, the ``extra`` fields and body."""
    columns = ("message", "timestamp", *extra, "body")
    rows = ((m.ref, m.timestamp, *(getattr(m, name) for name in extra), m.body) for m in found)
    return table(columns, rows)
