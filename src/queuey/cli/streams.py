"""``queuey tail`` (follow a stream) and the owner's ``token``, ``purge`` and ``redrive``."""

from __future__ import annotations

import argparse
import sys
from typing import cast

import orjson

from queuey.cli.common import Commands, Output, add_command, numbers
from queuey.client import (
    ClaimedMessage,
    Client,
    EventStream,
    Message,
    SocketStream,
    StreamOptions,
)
from queuey.client.calls import Right

RIGHTS = ("read", "post", "claim", "stream", "stats")


def add_parsers(commands: Commands) -> None:
    tail = add_command(
        commands, "tail",
        "follow a queue's stream: print its messages as they arrive, resuming after a "
        "disconnection from the last one received",
        tail_stream,
    )  # fmt: skip
    tail.add_argument("queue")
    tail.add_argument("--mode", choices=("broadcast", "roundrobin"),
                      help="the queue's policy by default; round-robin messages are acked "
                      "once printed")  # fmt: skip
    tail.add_argument("--partitions", type=numbers, help="comma-separated (default: all)")
    tail.add_argument("--after", help="start after this message id")
    tail.add_argument("--since", help="start at this timestamp or message id")
    tail.add_argument("--last-event-id", help="resume after this message id")
    tail.add_argument("--ttl", type=int, help="round-robin: lease seconds (claim_ttl)")
    tail.add_argument("--credit", type=int, help="round-robin: unacked messages held (10)")
    tail.add_argument("--no-ack", action="store_true", help="round-robin: leave them unacked")
    tail.add_argument(
        "--websocket", action="store_true",
        help="over a WebSocket (acks go through it) instead of server-sent events",
    )  # fmt: skip
    tail.add_argument("--count", type=int, help="stop after this many messages")
    token = add_command(commands, "token", "mint a token for a web page; prints it", mint)
    token.add_argument("subject", help="whose page: user:<id> or bid:<email>")
    token.add_argument(
        "--queues", required=True, help="comma-separated names; a trailing * matches a prefix"
    )
    token.add_argument("--rights", required=True, help=f"comma-separated: {', '.join(RIGHTS)}")
    token.add_argument("--ttl", type=int, help="seconds it stays valid (3600)")
    purge = add_command(
        commands, "purge", "delete every message of a queue, keeping it", purge_queue
    )
    purge.add_argument("queue")
    redrive = add_command(
        commands, "redrive", "move a dead-letter queue's messages back", redrive_queue
    )
    redrive.add_argument("queue", help="the dead-letter queue")
    redrive.add_argument("--to", help="this queue (default: each to the queue it came from)")
    redrive.add_argument("--limit", type=int, help="at most this many (default: all)")


def tail_stream(client: Client, args: argparse.Namespace, out: Output) -> None:
    options = StreamOptions(
        mode=args.mode, partitions=args.partitions, after=args.after, since=args.since,
        last_event_id=args.last_event_id, ttl=args.ttl, credit=args.credit,
    )  # fmt: skip
    stream: EventStream | SocketStream = (
        client.stream_socket(args.queue, **options)
        if args.websocket
        else client.stream(args.queue, **options)
    )
    shown = 0
    with stream:
        for message in stream:
            _print(message, out)
            if isinstance(message, ClaimedMessage) and not args.no_ack:
                if isinstance(stream, SocketStream):
                    stream.ack([message])
                else:
                    client.ack(args.queue, [message])
            shown += 1
            if args.count is not None and shown >= args.count:
                return


def _print(message: Message, out: Output) -> None:
    """One line a message: JSON with ``--json``, else its time, ``partition:id`` and body."""
    if out.as_json:
        line = orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
    else:
        line = f"{message.timestamp} {message.ref} {message.body}\n".encode()
    sys.stdout.buffer.write(line)
    sys.stdout.flush()


def mint(client: Client, args: argparse.Namespace, out: Output) -> None:
    rights = [cast(Right, item.strip()) for item in args.rights.split(",") if item.strip()]
    queues = [item.strip() for item in args.queues.split(",") if item.strip()]
    token = client.mint_token(args.subject, queues, rights, ttl=args.ttl)
    if out.as_json:
        out.show(token, lambda: token)
    else:  # the token alone, never wrapped: TOKEN=$(queuey token ...)
        sys.stdout.write(token.token + "\n")


def purge_queue(client: Client, args: argparse.Namespace, out: Output) -> None:
    purged = client.purge(args.queue)
    out.show({"purged": purged}, lambda: f"purged {purged} messages from {args.queue}")


def redrive_queue(client: Client, args: argparse.Namespace, out: Output) -> None:
    moved = client.redrive(args.queue, to=args.to, limit=args.limit)
    out.show({"moved": moved}, lambda: f"moved {moved} messages from {args.queue}")
