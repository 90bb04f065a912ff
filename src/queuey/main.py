"""The composition root: settings → storage → service → ASGI app. Only this module (and the
CLI) sees every layer."""

from __future__ import annotations

import gc
import os

from queuey import logs
from queuey.api.app import AsgiApp, create_app
from queuey.api.auth import KeyRing
from queuey.api.metrics import Metrics
from queuey.config import Settings, load_settings, with_default_application
from queuey.core.clock import Clock, SystemClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage import make_storage


def build_app(settings: Settings, clock: Clock | None = None) -> AsgiApp:
    storage = make_storage(settings.storage)
    service = QueueService(
        storage,
        settings.application_keys.keys(),
        clock or SystemClock(),
        Notifier(storage, poll_interval=POLL_INTERVAL),
        settings.limits,
    )
    return create_app(
        service,
        KeyRing(settings.application_keys),
        sweep_interval=settings.sweep_interval,
        sweep_batch=settings.sweep_batch,
        access_log=settings.access_log,
        metrics=Metrics() if settings.metrics else None,
        metrics_token=settings.metrics_token,
    )


def tune_gc() -> None:
    """Requests allocate many short-lived containers that reference counting frees; the
    collector's frequent full passes over the long-lived objects of start-up found nothing to
    free and cost ~10% of batch throughput (``make bench``). Freeze what start-up built and
    collect less often."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app_from_env() -> AsgiApp:
    """The app of a worker process: settings from ``QUEUEY_CONFIG`` and ``QUEUEY_*``.

    Usable by any ASGI server, e.g. ``granian --interface asgi --factory
    queuey.main:create_app_from_env``."""
    settings, _ = with_default_application(load_settings(None, os.environ))
    logs.configure(settings.log_level)
    app = build_app(settings)
    tune_gc()
    return app
