"""``queuey claim|ack|extend``: work-queue consumption."""

from __future__ import annotations

import argparse
from typing import NoReturn

from queuey.cli.common import CommandFailed, Commands, ExitCode, Output, add_command, numbers
from queuey.cli.messages import message_table
from queuey.client import Client, errors


def add_parsers(commands: Commands) -> None:
    claim = add_command(commands, "claim", "lease available messages", claim_messages)
    claim.add_argument("queue")
    claim.add_argument("--limit", type=int, help="at most this many messages (1)")
    claim.add_argument("--ttl", type=int, help="lease seconds (the queue's claim_ttl)")
    claim.add_argument("--partitions", type=numbers, help="comma-separated (default: all)")
    claim.add_argument("--wait", type=int, help="seconds to wait for a message (long poll)")
    ack = add_command(commands, "ack", "acknowledge claims: delete their messages", ack_claims)
    ack.add_argument("queue")
    ack.add_argument("claim_ids", nargs="+", metavar="CLAIM_ID")
    extend = add_command(
        commands, "extend", "keep claimed messages leased longer (--ttl 0 releases them)",
        extend_claims,
    )  # fmt: skip
    extend.add_argument("queue")
    extend.add_argument("claim_ids", nargs="+", metavar="CLAIM_ID")
    extend.add_argument("--ttl", type=int, required=True, help="seconds from now (0: release)")


def claim_messages(client: Client, args: argparse.Namespace, out: Output) -> None:
    found = client.claim(
        args.queue, limit=args.limit, ttl=args.ttl, partitions=args.partitions, wait=args.wait
    )
    out.show(found, lambda: message_table(found, "claim_id", "deliveries"))


def ack_claims(client: Client, args: argparse.Namespace, out: Output) -> None:
    try:
        acked = client.ack(args.queue, args.claim_ids)
    except errors.ClaimExpired as expired:
        _partly(out, expired, "acked")
    out.show({"acked": acked}, lambda: f"acked {len(acked)} claims")


def extend_claims(client: Client, args: argparse.Namespace, out: Output) -> None:
    try:
        extension = client.extend(args.queue, args.claim_ids, args.ttl)
    except errors.ClaimExpired as expired:
        _partly(out, expired, "released" if args.ttl == 0 else "extended")
    done = len(extension.extended)
    out.show(
        extension,
        lambda: (
            f"released {done} claims"
            if args.ttl == 0
            else f"extended {done} claims until {extension.claim_expires}"
        ),
    )


def _partly(out: Output, expired: errors.ClaimExpired, verb: str) -> NoReturn:
    """Say which claims were done and which had expired, and stop (exit code 1)."""
    out.error(expired, **{verb: expired.done, "failed": expired.failed})
    if not out.as_json:
        out.errors.print(f"{verb}: {' '.join(expired.done) or '-'}", markup=False)
        out.errors.print(f"failed: {' '.join(expired.failed)}", markup=False)
    raise CommandFailed(ExitCode.API_ERROR)
