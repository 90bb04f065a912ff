"""``queuey export``, ``import``, ``migrate`` and ``backup``: commands that work on a store
directly, named by a config file like the one ``queuey serve`` uses (not through a server)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from queuey.cli.common import EXIT_CODES, Commands, ExitCode
from queuey.config import DEFAULT_APPLICATION, ConfigError, Settings, load_settings
from queuey.core.clock import SystemClock
from queuey.core.errors import StorageUnavailable
from queuey.storage import make_storage
from queuey.storage.base import Storage
from queuey.transfer import backup, dump, migrate

T = TypeVar("T")
CONFIG_HELP = "the store's ini file, as for queuey serve (default: $QUEUEY_CONFIG, else built-in)"
DEFAULT_CHECKPOINT = "queuey-migrate.checkpoint"


class Stop(Exception):
    """The command stops with ``code`` after printing ``message``."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_parsers(commands: Commands) -> None:
    export = _command(commands, "export", "write an application's queues and messages as NDJSON")
    export.add_argument("--config", help=CONFIG_HELP)
    export.add_argument("--app", help="the application (default: the config's only one)")
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    export.set_defaults(run=lambda args: _run(_export, args))

    load = _command(commands, "import", "store the queues and messages of an export")
    load.add_argument("file", nargs="?", default="-", help="an export (default: stdin)")
    load.add_argument("--config", help=CONFIG_HELP)
    load.add_argument("--app", help="the application to store them in (default: the export's)")
    load.set_defaults(run=lambda args: _run(_import, args))

    copy = _command(commands, "migrate", "copy a whole store into another one, then verify")
    copy.add_argument("--from", dest="source", required=True, help="the source store's ini file")
    copy.add_argument("--to", dest="target", required=True, help="the target store's ini file")
    copy.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help=f"where the progress is kept, to resume after an interruption ({DEFAULT_CHECKPOINT})",
    )
    copy.add_argument("--workers", type=int, default=migrate.WORKERS,
                      help=f"queues copied side by side ({migrate.WORKERS})")  # fmt: skip
    copy.add_argument("--no-verify", action="store_true", help="skip the verification pass")
    copy.add_argument("--json", action="store_true", help="print the summary as JSON")
    copy.set_defaults(run=lambda args: _run(_migrate, args))

    snapshot = _command(commands, "backup", "copy the SQLite store, while it is in use, into DIR")
    snapshot.add_argument("directory", metavar="DIR", help="a new (or empty) directory")
    snapshot.add_argument("--config", help=CONFIG_HELP)
    snapshot.set_defaults(run=lambda args: _run(_backup, args))


def _command(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=help, description=help, epilog=EXIT_CODES,
                               formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip


def _run(command: Callable[[argparse.Namespace, Console], int], args: argparse.Namespace) -> int:
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return command(args, errors)
    except Stop as stop:
        errors.print(f"queuey: {stop}", markup=False)
        return stop.code
    except StorageUnavailable as error:
        errors.print(f"queuey: {error}", markup=False)
        return ExitCode.UNAVAILABLE
    except KeyboardInterrupt:
        errors.print("queuey: interrupted", markup=False)
        return ExitCode.INTERRUPTED


def _settings(path: str | None, environ: dict[str, str] | None = None) -> Settings:
    try:
        return load_settings(path, os.environ if environ is None else environ)
    except ConfigError as error:
        raise Stop(ExitCode.USAGE, f"configuration error: {error}") from None


def _application(settings: Settings, app: str | None) -> str:
    if app:
        return app
    apps = list(settings.application_keys)
    if len(apps) > 1:
        raise Stop(ExitCode.USAGE, f"the config has applications {', '.join(apps)}: pick one "
                                   "with --app")  # fmt: skip
    return apps[0] if apps else DEFAULT_APPLICATION


def _on_disk(settings: Settings, what: str) -> None:
    if settings.storage.backend == "memory":
        raise Stop(ExitCode.USAGE, f"the memory back-end keeps nothing outside a server's "
                                   f"process: there is nothing to {what}")  # fmt: skip


@contextlib.asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[Storage]:
    store = make_storage(settings.storage)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _progress(errors: Console, *columns: Any) -> Progress:
    """A progress display on stderr, shown on a terminal only."""
    return Progress(SpinnerColumn(), *columns, TimeElapsedColumn(), console=errors,
                    disable=not errors.is_terminal)  # fmt: skip


def _counter(label: str) -> TextColumn:
    return TextColumn(f"{label} {{task.completed:,.0f}}")


def _asyncio(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


# --- export and import --------------------------------------------------------------------------


def _export(args: argparse.Namespace, errors: Console) -> int:
    settings = _settings(args.config)
    _on_disk(settings, "export")
    app = _application(settings, args.app)
    output = _file(args.output, "w", sys.stdout.buffer)
    with output as out, _progress(errors, _counter("messages")) as progress:
        task = progress.add_task("export")

        async def work() -> dump.Exported:
            async with _opened(settings) as store:
                tick = lambda n: progress.advance(task, n)  # noqa: E731
                return await dump.export_app(store, app, out, SystemClock(), tick)

        done = _asyncio(work())
    errors.print(f"exported {done.queues} queues, {done.messages} messages of {app}",
                 markup=False)  # fmt: skip
    return ExitCode.OK


@contextlib.contextmanager
def _file(path: str | None, mode: str, standard: BinaryIO) -> Iterator[BinaryIO]:
    """The file ``path`` opened in binary ``mode`` (``r`` or ``w``), or ``standard`` for ``-``."""
    if path is None or path == "-":
        yield standard
        standard.flush()
        return
    try:
        file = open(path, "rb") if mode == "r" else open(path, "wb")  # noqa: SIM115
    except OSError as error:
        doing = "read" if mode == "r" else "write"
        raise Stop(ExitCode.USAGE, f"cannot {doing} {path}: {error.strerror}") from None
    with file:
        yield file


def _import(args: argparse.Namespace, errors: Console) -> int:
    settings = _settings(args.config)
    _on_disk(settings, "import into")
    source = _file(args.file, "r", sys.stdin.buffer)
    with source as lines, _progress(errors, _counter("messages")) as progress:
        task = progress.add_task("import")

        async def work() -> dump.Imported:
            async with _opened(settings) as store:
                tick = lambda n: progress.advance(task, n)  # noqa: E731
                return await dump.import_lines(
                    store, lines, SystemClock(), settings.limits, args.app, tick
                )

        try:
            done = _asyncio(work())
        except dump.ImportFailed as failed:
            raise Stop(ExitCode.USAGE, f"{args.file}: {failed}; the lines before it are "
                                       "stored") from None  # fmt: skip
    errors.print(
        f"imported {done.queues_created} new queues ({done.queues_found} existed), "
        f"{done.messages} messages (those stored already left as they were)"
        + (f"; {done.expired} expired since the export" if done.expired else ""),
        markup=False,
    )
    return ExitCode.OK


# --- migrate ------------------------------------------------------------------------------------


def _describe(settings: Settings) -> str:
    """Which store ``settings`` name, as text (checkpoints belong to a pair of stores)."""
    storage = settings.storage
    if storage.backend == "cassandra" and storage.cassandra is not None:
        hosts = ",".join(f"{host}:{port}" for host, port in storage.cassandra.hosts)
        return f"cassandra://{hosts}/{storage.cassandra.keyspace}+{storage.metadata_keyspace}"
    return f"{storage.backend}:{storage.path}"


def _migrate(args: argparse.Namespace, errors: Console) -> int:
    # The files alone: QUEUEY_STORAGE_* variables would make both stores one.
    source, target = _settings(args.source, {}), _settings(args.target, {})
    _on_disk(source, "migrate")
    _on_disk(target, "migrate into")
    names = _describe(source), _describe(target)
    if names[0] == names[1]:
        raise Stop(ExitCode.USAGE, f"--from and --to name the same store ({names[0]})")
    if args.workers < 1:
        raise Stop(ExitCode.USAGE, "--workers must be at least 1")
    checkpoint_path = Path(args.checkpoint)
    try:
        checkpoint = migrate.Checkpoint.load(checkpoint_path, *names)
    except migrate.CheckpointError as error:
        raise Stop(ExitCode.USAGE, str(error)) from None
    resumed = checkpoint.after is not None or bool(checkpoint.queues)
    if resumed and not checkpoint.finished:
        errors.print(f"queuey: resuming from {checkpoint_path}", markup=False)
    clock = SystemClock()
    summary: dict[str, Any] = {"source": names[0], "target": names[1]}

    async def work() -> migrate.Verification | None:
        async with _opened(source) as from_store, _opened(target) as to_store:
            total = await migrate.count_queues(from_store)
            summary["queues"] = total
            if not checkpoint.finished:
                started = time.monotonic()
                copied = checkpoint.copied
                with _bars(errors, "copied", total) as ticks:
                    await migrate.migrate(from_store, to_store, checkpoint, clock, ticks,
                                          args.workers)  # fmt: skip
                seconds = time.monotonic() - started
                summary["copied"] = checkpoint.copied - copied
                summary["seconds"] = round(seconds, 3)
                summary["rate"] = round(summary["copied"] / seconds, 1) if seconds else None
            if args.no_verify:
                return None
            with _bars(errors, "verified", total) as ticks:
                return await migrate.verify(from_store, to_store, clock, ticks, args.workers)

    verification = _asyncio(work())
    return _report(summary, verification, args.json, checkpoint_path)


@contextlib.contextmanager
def _bars(errors: Console, doing: str, queues: int) -> Iterator[migrate.Ticks]:
    columns = (TextColumn(f"{doing} {{task.description}}"), BarColumn(),
               MofNCompleteColumn(), TaskProgressColumn(show_speed=True))  # fmt: skip
    with _progress(errors, *columns) as progress:
        queue_task = progress.add_task("queues", total=queues)
        message_task = progress.add_task("messages", total=None)
        yield migrate.Ticks(
            queues=lambda n: progress.advance(queue_task, n),
            messages=lambda n: progress.advance(message_task, n),
        )


def _report(
    summary: dict[str, Any],
    verification: migrate.Verification | None,
    as_json: bool,
    checkpoint: Path,
) -> int:
    lines = []
    if "copied" in summary:
        lines.append(
            f"copied {summary['copied']} messages of {summary['queues']} queues in "
            f"{summary['seconds']} s ({summary['rate']} messages/s); progress in {checkpoint}"
        )
    else:
        lines.append(f"{checkpoint} says the copy is finished: verifying only")
    code = ExitCode.OK
    if verification is not None:
        sides = {"source": verification.source, "target": verification.target}
        summary["verified"] = {
            name: {"queues": side.queues, "messages": side.messages, "checksum": side.checksum}
            for name, side in sides.items()
        }
        summary["mismatches"] = verification.mismatches
        for name, side in sides.items():
            lines.append(f"{name}: {side.queues} queues, {side.messages} messages, "
                         f"checksum {side.checksum[:16]}")  # fmt: skip
        if verification.ok:
            lines.append("verified: both sides hold the same queues and messages")
        else:
            code = ExitCode.MISMATCH
            lines += [f"mismatch: {text}" for text in verification.mismatches[:20]]
            if len(verification.mismatches) > 20:
                lines.append(f"... and {len(verification.mismatches) - 20} more")
            lines.append("verification failed: the stores differ")
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    else:
        print("\n".join(lines))
    sys.stdout.flush()
    return code


# --- backup -------------------------------------------------------------------------------------


def _backup(args: argparse.Namespace, errors: Console) -> int:
    settings = _settings(args.config)
    backend = settings.storage.backend
    if backend != "sqlite":
        hint = " (use nodetool snapshot on each node)" if backend == "cassandra" else ""
        raise Stop(ExitCode.USAGE, f"queuey backup copies the sqlite back-end's store; this "
                                   f"config uses {backend}{hint}")  # fmt: skip
    columns = (TextColumn("backup"), BarColumn(), TaskProgressColumn())
    with _progress(errors, *columns) as progress:
        task = progress.add_task("backup", total=None)
        try:
            path = backup.backup_store(
                settings.storage.path,
                Path(args.directory),
                lambda done, total: progress.update(task, completed=done, total=total),
            )
        except (backup.BackupError, OSError) as error:
            raise Stop(ExitCode.USAGE, str(error)) from None
    print(f"backed up {settings.storage.path} into {path}")
    return ExitCode.OK
