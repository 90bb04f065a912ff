"""The ``queuey`` command: ``serve`` runs the server; the other commands talk to one through
``queuey.client``. Exit codes: see ``common.ExitCode``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import cast

from queuey import __version__
from queuey.cli import claims, data, messages, queues, serve, streams
from queuey.cli.common import EXIT_CODES


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="queuey",
        description="RESTful message queue service",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"queuey {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(commands)
    queues.add_parsers(commands)
    messages.add_parsers(commands)
    claims.add_parsers(commands)
    data.add_parsers(commands)
    streams.add_parsers(commands)
    args = parser.parse_args(argv)
    run = cast(Callable[[argparse.Namespace], int], args.run)
    return run(args)
