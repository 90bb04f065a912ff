"""The composition root: settings → storage → service → ASGI app. Only this module (and the
CLI) sees every layer."""

from __future__ import annotations

import gc
import os

from queuey import logs
from queuey.api.app import AsgiApp, create_app
from queuey.api.auth import KeyRing
from queuey.api.aweq import AweQ
from queuey.api.cors import CorsPolicy
from queuey.api.frontend import Access, FrontEnd
from queuey.api.metrics import Metrics
from queuey.api.restmq import RestMQ
from queuey.config import (
    ConfigError,
    Settings,
    load_settings,
    token_secrets,
    with_default_application,
)
from queuey.core.clock import Clock, SystemClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.service.tokens import Tokens, issuer_keys
from queuey.storage import make_storage


def build_app(settings: Settings, clock: Clock | None = None) -> AsgiApp:
    clock = clock or SystemClock()
    tokens = Tokens(
        token_secrets(settings), clock, settings.limits.max_token_ttl, _issuers(settings)
    )
    # The metrics observe the storage and the service; with them off, nothing is observed.
    metrics = Metrics() if settings.metrics else None
    storage = make_storage(settings.storage, metrics)
    service = QueueService(
        storage,
        settings.application_keys.keys(),
        clock,
        Notifier(storage, poll_interval=POLL_INTERVAL),
        settings.limits,
        tokens,
        settings.quotas,
        metrics,
    )
    keys = KeyRing(settings.application_keys)
    return create_app(
        service,
        keys,
        sweep_interval=settings.sweep_interval,
        sweep_batch=settings.sweep_batch,
        access_log=settings.access_log,
        metrics=metrics,
        metrics_token=settings.metrics_token,
        cors=CorsPolicy.of(settings.cors_origins, settings.cors),
        front_ends=front_ends(settings, service, keys),
    )


def _issuers(settings: Settings) -> dict[str, list[object]]:
    issuers = {}
    for app, path in settings.token_issuers.items():
        try:
            issuers[app] = issuer_keys(str(path))
        except (OSError, ValueError) as error:
            raise ConfigError(f"[token_issuers] {app}: {error}") from None
    return issuers


def front_ends(settings: Settings, service: QueueService, keys: KeyRing) -> list[FrontEnd]:
    """The compatibility front ends the settings turn on (api.md Part 4)."""
    found: list[FrontEnd] = []
    if settings.restmq is not None:
        restmq = settings.restmq
        found.append(RestMQ(service, Access(restmq.application, keys, restmq.hosts_allow)))
    if settings.aweq is not None:
        aweq = settings.aweq
        found.append(AweQ(service, Access(aweq.application, keys, aweq.hosts_allow), aweq.queue))
    return found


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
