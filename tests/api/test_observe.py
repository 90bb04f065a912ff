"""Request ids, access log lines and ``GET /metrics`` on the in-process app."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import falcon.testing
import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from queuey.api import metrics as metrics_module
from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.api.metrics import BUCKETS, Metrics
from queuey.core.clock import FakeClock
from queuey.logs import RequestIdFilter
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from tests.api.conftest import AUTH, FORM, KEYS, patient
from tests.conftest import make_storage

Conductor = falcon.testing.ASGIConductor


async def _conductor(tmp_path: Path, **options: object) -> AsyncIterator[Conductor]:
    storage = make_storage("memory", tmp_path)
    service = QueueService(storage, KEYS.keys(), FakeClock(), Notifier(storage, POLL_INTERVAL))
    app = create_app(service, KeyRing(KEYS), sweep_interval=3600, **options)  # type: ignore[arg-type]
    async with falcon.testing.ASGIConductor(patient(app)) as conductor:
        yield conductor


@pytest.fixture
async def observed(tmp_path: Path) -> AsyncIterator[Conductor]:
    async for conductor in _conductor(tmp_path, metrics=Metrics(), metrics_token="s3cret"):
        yield conductor


@pytest.fixture
async def plain(tmp_path: Path) -> AsyncIterator[Conductor]:
    async for conductor in _conductor(tmp_path):
        yield conductor


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_request_id_is_echoed_when_sane_and_generated_otherwise(plain: Conductor) -> None:
    given = await plain.simulate_get("/v1/queuey", headers={**AUTH, "X-Request-Id": "abc-1.2:3"})
    assert given.headers["X-Request-Id"] == "abc-1.2:3"
    for insane in ("a b", "x" * 129, "line\tbreak", "é"):
        result = await plain.simulate_get("/__lbheartbeat__", headers={"X-Request-Id": insane})
        assert result.headers["X-Request-Id"] != insane
        assert re.fullmatch(r"[0-9a-f]{16}", result.headers["X-Request-Id"])
    ids = {(await plain.simulate_get("/__lbheartbeat__")).headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/no/such/route/at/all", {}, 404),
        ("GET", "/v1/queuey", {}, 401),
        ("GET", "/v1/queuey/missing", AUTH, 404),
        ("DELETE", "/__heartbeat__", {}, 405),
        ("POST", "/v1/queuey", {**AUTH, "Content-Type": "application/json"}, 400),
        ("GET", "/__version__", {}, 200),
    ],
)
async def test_every_answer_carries_a_request_id(
    plain: Conductor, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    result = await plain.simulate_request(method, path, headers=headers, body="{")
    assert result.status_code == status
    assert result.headers["X-Request-Id"]
    assert (
        await plain.simulate_request(method, path, headers={**headers, "X-Request-Id": "r-1"})
    ).headers["X-Request-Id"] == "r-1"


async def test_unexpected_errors_are_logged_with_the_request_id(
    plain: Conductor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(QueueService, "list_queues", broken)
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.ERROR, logger="queuey"):
        result = await plain.simulate_get("/v1/queuey", headers={**AUTH, "X-Request-Id": "fail-7"})
    assert result.status_code == 500
    assert result.headers["X-Request-Id"] == "fail-7"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all("[request_id=fail-7]" in r.getMessage() for r in errors)


async def test_json_access_log_has_one_line_per_request(tmp_path: Path) -> None:
    out = io.StringIO()
    async for conductor in _conductor(tmp_path, access_log="json", access_log_to=out):
        await conductor.simulate_get("/v1/queuey?limit=5", headers={**AUTH, "X-Request-Id": "q1"})
        await conductor.simulate_get("/nowhere")
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["method"], x["path"], x["status"], x["request_id"]) for x in lines][0] == (
        "GET", "/v1/queuey", 200, "q1",
    )  # fmt: skip
    assert lines[0]["query"] == "limit=5" and lines[0]["bytes"] > 0 and lines[0]["ms"] >= 0
    assert (lines[1]["path"], lines[1]["status"]) == ("/nowhere", 404)
    assert len(lines) == 2


async def test_text_access_log_and_off(tmp_path: Path) -> None:
    for fmt, expected in (("text", 1), ("off", 0)):
        out = io.StringIO()
        async for conductor in _conductor(tmp_path / fmt, access_log=fmt, access_log_to=out):
            await conductor.simulate_get("/__version__", headers={"X-Request-Id": "t-1"})
        lines = out.getvalue().splitlines()
        assert len(lines) == expected
        if expected:
            assert re.fullmatch(
                r'127\.0\.0\.1 "GET /__version__" 200 \d+ [\d.]+ms id=t-1', lines[0]
            )


async def test_metrics_count_requests_and_messages_by_application(observed: Conductor) -> None:
    create = await observed.simulate_post(
        "/v1/queuey", headers=AUTH, body=urlencode({"queue_name": "jobs"}), content_type=FORM
    )
    assert create.status_code == 201
    for n in range(3):
        posted = await observed.simulate_post(
            "/v1/queuey/jobs", headers=AUTH, body=f"m{n}", content_type="text/plain"
        )
        assert posted.status_code == 201
    batch = orjson.dumps({"messages": [{"body": "a"}, {"body": "b"}]})
    posted = await observed.simulate_post(
        "/v1/queuey/jobs", headers=AUTH, body=batch, content_type="application/json"
    )
    assert posted.status_code == 201
    read = await observed.simulate_get("/v1/queuey/jobs", headers=AUTH)
    assert len(read.json["messages"]) == 5
    claimed = await observed.simulate_post(
        "/v1/queuey/jobs/claims", headers=AUTH, body="limit=2", content_type=FORM
    )
    ids = ",".join(m["claim_id"] for m in claimed.json["messages"])
    acked = await observed.simulate_delete(f"/v1/queuey/jobs/claims/{ids}", headers=AUTH)
    assert acked.status_code == 200
    await observed.simulate_get("/v1/queuey/missing", headers=AUTH)
    await observed.simulate_get("/not/a/route")

    result = await observed.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/plain")
    assert "jobs" not in result.text  # never a queue name
    found = samples(result.text)
    messages = "queuey_messages_total"
    for event, n in (("posted", 5), ("read", 5), ("claimed", 2), ("acked", 2)):
        assert found[messages, (("application", "queuey"), ("event", event))] == n
    requests = "queuey_http_requests_total"
    queue = "/v1/{app}/{queue}"
    assert found[requests, (("method", "POST"), ("route", queue), ("status", "201"))] == 4
    assert found[requests, (("method", "GET"), ("route", queue), ("status", "200"))] == 1
    assert found[requests, (("method", "GET"), ("route", queue), ("status", "404"))] == 1
    assert found[requests, (("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    histogram = "queuey_http_request_duration_seconds_count"
    assert found[histogram, (("method", "POST"), ("route", queue))] == 4
    assert found["queuey_http_request_duration_seconds_bucket",
                 (("le", "+Inf"), ("method", "POST"), ("route", queue))] == 4  # fmt: skip
    labels = {name for (_, pairs) in found for name, _ in pairs}
    assert labels <= {"route", "method", "status", "application", "event", "le"}


async def test_metrics_need_the_token_off_loopback(observed: Conductor, plain: Conductor) -> None:
    remote = "203.0.113.9"
    refused = await observed.simulate_get("/metrics", remote_addr=remote)
    assert refused.status_code == 403
    assert "metrics_token" in refused.json["error_msg"]["Forbidden"]
    wrong = {"Authorization": "Bearer nope"}
    assert (
        await observed.simulate_get("/metrics", remote_addr=remote, headers=wrong)
    ).status_code == 403
    right = {"Authorization": "Bearer s3cret"}
    assert (
        await observed.simulate_get("/metrics", remote_addr=remote, headers=right)
    ).status_code == 200
    assert (await plain.simulate_get("/metrics")).status_code == 404  # metrics off


def test_latencies_land_in_the_buckets_histogram_observe_puts_them_in() -> None:
    metrics, registry = Metrics(), CollectorRegistry()
    reference = Histogram("reference", "", buckets=BUCKETS, registry=registry)
    # Every bound exactly (le is inclusive), just above each, zero, and beyond the last one.
    latencies = [0.0, 30.0, *BUCKETS, *(bound * 1.001 for bound in BUCKETS)]
    for seconds in latencies:
        metrics.request("/v1/{app}", "GET", 200, seconds)
        reference.observe(seconds)
    metrics.request("/v1/{app}", "GET", 404, 0.002)  # another status, the same histogram
    reference.observe(0.002)
    found = samples(metrics.exposition().decode())
    expected = samples(generate_latest(registry).decode())
    labels = (("method", "GET"), ("route", "/v1/{app}"))
    for (name, pairs), value in expected.items():
        if not name.endswith("_created"):
            ours = name.replace("reference", "queuey_http_request_duration_seconds")
            assert found[ours, tuple(sorted((*pairs, *labels)))] == pytest.approx(value), name
    assert found["queuey_http_requests_total", (*labels, ("status", "200"))] == len(latencies)


async def test_the_flusher_moves_what_requests_gathered_without_a_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module, "FLUSH_INTERVAL", 0.01)
    metrics = Metrics()
    async for conductor in _conductor(tmp_path, metrics=metrics):
        await conductor.simulate_get("/__lbheartbeat__")
        labels = {"route": "/__lbheartbeat__", "method": "GET", "status": "200"}
        for _ in range(100):
            await asyncio.sleep(0.01)
            if metrics.registry.get_sample_value("queuey_http_requests_total", labels):
                break
        assert metrics.registry.get_sample_value("queuey_http_requests_total", labels) == 1
