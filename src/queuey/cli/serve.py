"""``queuey serve``: the HTTP server."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import sys
import tempfile

from queuey import __version__
from queuey.cli.common import Commands
from queuey.config import (
    DEFAULT_APPLICATION,
    KEY_FILE_NAME,
    ConfigError,
    Settings,
    load_settings,
    token_secrets,
    with_default_application,
)


def add_parser(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument(
        "--config", help="ini file (default: $QUEUEY_CONFIG, else built-in defaults)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=5000, help="port to listen on (5000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    serve.set_defaults(run=lambda args: _serve(args.config, args.host, args.port, args.workers))


def _serve(config: str | None, host: str, port: int, workers: int) -> int:
    if workers < 1:
        print("queuey: --workers must be at least 1", file=sys.stderr)
        return 2
    if config is not None:
        config = os.path.abspath(config)
        # Worker processes load the same file: they find it through the environment.
        os.environ["QUEUEY_CONFIG"] = config
    try:
        loaded = load_settings(config, os.environ)
        settings, generated_key = with_default_application(loaded)
        token_secrets(settings)  # generated here once, before any worker reads it
    except ConfigError as error:
        print(f"queuey: configuration error: {error}", file=sys.stderr)
        return 2
    if settings.metrics:
        # Before prometheus_client is first imported: it picks its storage at import.
        _metrics_directory(workers)
    from queuey import logs

    logs.configure(settings.log_level)
    for warning in settings.warnings:
        logging.getLogger("queuey").warning("%s", warning)
    if workers > 1 and settings.storage.backend == "memory":
        print(
            "queuey: the memory back-end lives inside one process; use --workers 1 "
            "or the sqlite back-end",
            file=sys.stderr,
        )
        return 2
    if generated_key is not None:
        _print_welcome(settings, generated_key, host, port)
    elif not loaded.application_keys:  # a key generated at an earlier start: not shown again
        key_file = settings.storage.path / KEY_FILE_NAME
        print(
            f"Queuey {__version__}: application {DEFAULT_APPLICATION!r}, key in {key_file}",
            flush=True,
        )
    return _run(settings, host, port, workers)


def _print_welcome(settings: Settings, key: str, host: str, port: int) -> None:
    app = next(iter(settings.application_keys))
    url = f"http://{host}:{port}/v1/{app}"
    where = (
        f"stored in {settings.storage.path / KEY_FILE_NAME}; printed only now"
        if settings.storage.backend != "memory"
        else "new at every start with the memory back-end"
    )
    print(
        f"Queuey {__version__}: application {app!r}, key {key} ({where})\n"
        f"Try:\n"
        f"  curl -H 'Authorization: Application {key}' -d queue_name=hello {url}\n"
        f"  curl -H 'Authorization: Application {key}' -d 'Hello!' {url}/hello\n"
        f"  curl -H 'Authorization: Application {key}' {url}/hello",
        flush=True,
    )


def _run(settings: Settings, host: str, port: int, workers: int) -> int:
    import uvicorn

    from queuey.main import build_app, tune_gc
    from queuey.server import QueueyHttpProtocol, QueueyWebSocketProtocol

    options: dict[str, object] = {
        "host": host,
        "port": port,
        # httptools with a request deadline and bounded request heads (a partial pickles, so
        # workers get it too)
        "http": functools.partial(
            QueueyHttpProtocol,
            request_timeout=settings.limits.request_timeout,
            max_header_bytes=settings.limits.max_header_bytes,
            max_header_count=settings.limits.max_header_count,
        ),
        # websockets' sans-I/O protocol, with a direct writer of a stream's messages
        "ws": QueueyWebSocketProtocol,
        "loop": _loop(),
        "lifespan": "on",
        "access_log": False,
        # Queuey never uses the client's address, so it skips parsing X-Forwarded-*.
        "proxy_headers": False,
        "server_header": False,
        "log_level": settings.log_level,
        "timeout_keep_alive": 30,
    }
    if workers == 1:
        app = build_app(settings)
        tune_gc()
        uvicorn.run(app, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run("queuey.main:create_app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    return 0


# prometheus_client's own variable (queuey.api.metrics would import prometheus_client too soon).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_directory(workers: int) -> None:
    """Several workers share their metrics through files in ``PROMETHEUS_MULTIPROC_DIR``: a
    directory of the operator's choosing (emptied now, as the values of an earlier run would
    be added in), else a new one removed at exit."""
    chosen = os.environ.get(MULTIPROC_ENV)
    if chosen:
        os.makedirs(chosen, exist_ok=True)
        for name in os.listdir(chosen):
            if name.endswith(".db"):
                os.unlink(os.path.join(chosen, name))
    elif workers > 1:
        made = tempfile.mkdtemp(prefix="queuey-metrics-")
        atexit.register(shutil.rmtree, made, ignore_errors=True)
        os.environ[MULTIPROC_ENV] = made


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"
