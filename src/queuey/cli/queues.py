"""``queuey queues|create|update|delete|stats``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, cast

from queuey.cli.common import Commands, Output, add_command, fields, table
from queuey.client import Client, Queue, QueueOptions

# Each queue setting as an option: (name, type, choices).
SETTINGS: tuple[tuple[str, type[Any], tuple[str, ...] | None], ...] = (
    ("partitions", int, None),
    ("type", str, ("user", "public")),
    ("consistency", str, ("weak", "strong", "very_strong")),
    ("principles", str, None),
    ("delivery", str, ("at_most_once", "at_least_once", "exactly_once")),
    ("claim_ttl", int, None),
    ("max_deliveries", int, None),
    ("dead_letter_queue", str, None),
    ("delay", int, None),
    ("dedup_window", int, None),
    ("policy", str, ("broadcast", "roundrobin")),
)


def add_parsers(commands: Commands) -> None:
    listing = add_command(commands, "queues", "list the application's queues", list_queues)
    listing.add_argument("--offset", help="start at this queue name (inclusive)")
    listing.add_argument("--limit", type=int, help="at most this many queues (1000)")
    listing.add_argument("--details", action="store_true", help="show every setting")
    listing.add_argument("--count", action="store_true", help="show live message counts")
    create = add_command(commands, "create", "create a queue", create_queue)
    create.add_argument("queue", nargs="?", help="its name (default: a new random one)")
    _settings_options(create)
    update = add_command(commands, "update", "change a queue's settings", update_queue)
    update.add_argument("queue")
    _settings_options(update)
    delete = add_command(commands, "delete", "delete a queue and its messages", delete_queue)
    delete.add_argument("queue")
    stats = add_command(commands, "stats", "a queue's message counts", queue_stats)
    stats.add_argument("queue")


def _settings_options(parser: argparse.ArgumentParser) -> None:
    for name, kind, choices in SETTINGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, choices=choices)
    parser.add_argument(
        "--paused", action=argparse.BooleanOptionalAction, help="pause (or resume) claims"
    )


def _options(args: argparse.Namespace) -> QueueOptions:
    names = [name for name, _, _ in SETTINGS] + ["paused"]
    given: dict[str, Any] = {
        name: getattr(args, name) for name in names if getattr(args, name) is not None
    }
    if "principles" in given:
        given["principles"] = [item.strip() for item in given["principles"].split(",")]
    return cast(QueueOptions, given)


def list_queues(client: Client, args: argparse.Namespace, out: Output) -> None:
    found = client.list_queues(args.offset, args.limit, args.details, args.count)
    out.show(found, lambda: _queue_table(found))


def _queue_table(found: list[Queue]) -> object:
    if all(queue.settings is None for queue in found):
        return table(("queue",), ((queue.name,) for queue in found))
    columns = ("queue", "partitions", "type", "delivery", "claim_ttl", "paused", "count")
    rows = (
        (q.name, s.partitions, s.type, s.delivery, s.claim_ttl, s.paused, q.count)
        for q in found
        if (s := q.settings) is not None
    )
    return table(columns, rows)


def create_queue(client: Client, args: argparse.Namespace, out: Output) -> None:
    queue = client.create_queue(args.queue, **_options(args))
    out.show(queue, lambda: _settings_table(queue))


def update_queue(client: Client, args: argparse.Namespace, out: Output) -> None:
    queue = client.update_queue(args.queue, **_options(args))
    out.show(queue, lambda: _settings_table(queue))


def _settings_table(queue: Queue) -> object:
    values: dict[str, Any] = {"queue": queue.name}
    if queue.settings is not None:
        values.update(dataclasses.asdict(queue.settings))
        values["principles"] = ",".join(queue.settings.principles)
    return fields(values)


def delete_queue(client: Client, args: argparse.Namespace, out: Output) -> None:
    client.delete_queue(args.queue)
    out.show({"deleted": args.queue}, lambda: f"deleted queue {args.queue}")


def queue_stats(client: Client, args: argparse.Namespace, out: Output) -> None:
    stats = client.stats(args.queue)
    out.show(stats, lambda: fields(dataclasses.asdict(stats)))
