"""What the client commands share: the connection options, output (rich tables, or JSON with
``--json``) and the exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import Any, TypeAlias

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from queuey.client import Client, errors

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
DEFAULT_URL = "http://127.0.0.1:5000/v1/queuey"


class ExitCode(IntEnum):
    OK = 0
    API_ERROR = 1  # the server refused the request (a 4xx answer)
    USAGE = 2  # bad arguments or input: nothing was sent
    UNREACHABLE = 3  # no base URL could be reached
    UNAVAILABLE = 4  # the server answered 503 on every attempt, or failed (5xx)
    MISMATCH = 5  # migrate: the verification found that the two stores differ
    INTERRUPTED = 130  # Ctrl-C, as shells count SIGINT


EXIT_CODES = """exit codes:
  0  success
  1  the server refused the request (an API error, printed with its error_msg)
  2  usage: bad arguments or unreadable input, nothing was sent
  3  no server could be reached (connection refused, timed out, TLS failure)
  4  the server is unavailable (503 after the retries) or failed (5xx); for the commands
     on a store (export, import, migrate, backup): the store could not be used
  5  migrate: the verification found that the two stores differ
  130  interrupted (Ctrl-C)"""


class Output:
    """Results on stdout, as rich tables or (``--json``) one JSON document; errors on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(highlight=False)
        self.errors = Console(stderr=True, highlight=False, soft_wrap=True)

    def show(self, data: object, human: Callable[[], object]) -> None:
        """``data`` as JSON with ``--json``, else what ``human`` renders."""
        if self.as_json:
            sys.stdout.buffer.write(orjson.dumps(data) + b"\n")
            sys.stdout.flush()
        else:
            self.console.print(human(), markup=False)

    def error(self, error: errors.ClientError, **more: object) -> None:
        if self.as_json:
            payload: dict[str, object] = {"error": str(error), **more}
            if isinstance(error, errors.ApiError):
                payload.update(status=error.status, error_msg=error.error_msg)
            sys.stderr.write(orjson.dumps(payload).decode() + "\n")
        else:
            self.errors.print(f"queuey: {error}", markup=False)


def table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """Cells are plain text: a message's ``[bold]`` is not rich markup."""
    grid = Table(*columns)
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return grid


def fields(values: dict[str, Any]) -> Table:
    """A two-column table: one row per field."""
    return table(("field", "value"), values.items())


Handler = Callable[[Client, argparse.Namespace, Output], None]


def add_command(
    commands: Commands, name: str, help: str, handler: Handler
) -> argparse.ArgumentParser:
    """A client command: the connection options, and ``handler`` run with a client."""
    parser = commands.add_parser(name, help=help, description=help, epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--url",
        action="append",
        help="the application's URL, e.g. http://127.0.0.1:5000/v1/queuey; repeat it (or "
        "separate with commas) for fail-over (default: $QUEUEY_URL, else that example)",
    )
    parser.add_argument("--key", help="application key (default: $QUEUEY_KEY)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for an answer (10)"
    )
    parser.set_defaults(run=lambda args: run(handler, args))
    return parser


def run(handler: Handler, args: argparse.Namespace) -> int:
    output = Output(args.json)
    urls = args.url or [os.environ.get("QUEUEY_URL") or DEFAULT_URL]
    key = args.key or os.environ.get("QUEUEY_KEY") or None
    try:
        client = Client(",".join(urls), key, timeout=args.timeout)
    except ValueError as error:
        output.errors.print(f"queuey: {error}", markup=False)
        return ExitCode.USAGE
    try:
        with client:
            handler(client, args, output)
    except CommandFailed as failed:
        return failed.code
    except KeyboardInterrupt:
        output.errors.print("queuey: interrupted", markup=False)
        return ExitCode.INTERRUPTED
    except errors.ClientError as error:
        output.error(error)
        return exit_code(error)
    return ExitCode.OK


class CommandFailed(Exception):
    """A command stopped after saying why; ``code`` is its exit code."""

    def __init__(self, code: ExitCode) -> None:
        super().__init__(code.name)
        self.code = code


def exit_code(error: errors.ClientError) -> ExitCode:
    if isinstance(error, errors.ConnectionFailed):
        return ExitCode.UNREACHABLE
    if isinstance(error, errors.Unavailable | errors.ServerError):
        return ExitCode.UNAVAILABLE
    return ExitCode.API_ERROR


def numbers(text: str) -> list[int]:
    """A comma-separated list of integers (argparse type)."""
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None
