"""``queuey serve`` in operation: metrics summed over workers (counters, storage latency,
open streams), access log lines."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from queuey.api.metrics import FLUSH_INTERVAL
from queuey.client import Client
from tests.e2e.conftest import AUTH, KEY, Server, start_server, write_config

pytestmark = pytest.mark.e2e


def posted_total(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "queuey_messages_total" and sample.labels["event"] == "posted":
                return sample.value
    return 0.0


def test_one_scrape_sums_every_worker(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    stale = shared / "counter_1.db"  # an earlier run's values must not be added in
    stale.write_bytes(b"\0" * 16)
    running = start_server(
        tmp_path,
        ["--config", str(write_config(tmp_path)), "--workers", "2"],
        env={"PROMETHEUS_MULTIPROC_DIR": str(shared)},
    )
    try:
        assert not stale.exists()
        httpx.post(f"{running.url}/v1/queuey", data={"queue_name": "m"}, headers=AUTH)

        def post(index: int) -> None:
            with httpx.Client(base_url=running.url, headers=AUTH) as http:
                assert http.post("/v1/queuey/m", content=f"{index}".encode()).status_code == 201

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(300)))
        # Each worker adds its values to the shared files every FLUSH_INTERVAL seconds.
        time.sleep(FLUSH_INTERVAL * 2)
        pids = {re.sub(r"\D", "", p.name) for p in shared.glob("counter_*.db")}
        assert len(pids) == 2, pids  # both workers counted some of the posts
        for _ in range(6):  # whichever worker answers the scrape
            with httpx.Client(base_url=running.url) as http:  # a new connection each time
                assert posted_total(http.get("/metrics").text) == 300
    finally:
        running.stop()


def test_serve_writes_a_text_access_log_line_per_request(server: Server) -> None:
    answer = httpx.get(f"{server.url}/v1/queuey", headers={**AUTH, "X-Request-Id": "tour-1"})
    assert answer.headers["X-Request-Id"] == "tour-1"
    missing = httpx.get(f"{server.url}/nowhere")
    generated = missing.headers["X-Request-Id"]
    server.stop()
    log = server.output()
    assert re.search(r'127\.0\.0\.1 "GET /v1/queuey" 200 \d+ [\d.]+ms id=tour-1', log)
    assert '"GET /nowhere" 404' in log and f"id={generated}" in log


def test_access_log_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="\n[queuey]\naccess_log = off\n")
    running = start_server(tmp_path, ["--config", str(config)])
    httpx.get(f"{running.url}/v1/queuey", headers={**AUTH, "X-Request-Id": "quiet-1"})
    running.stop()
    assert "quiet-1" not in running.output()


def test_open_streams_and_storage_calls_sum_over_workers(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    running = start_server(
        tmp_path,
        ["--config", str(write_config(tmp_path)), "--workers", "2"],
        env={"PROMETHEUS_MULTIPROC_DIR": str(shared)},
    )

    def scrape() -> dict[tuple[str, str], float]:
        with httpx.Client(base_url=running.url) as http:  # a new connection: any worker
            text = http.get("/metrics").text
        return {
            (sample.name, sample.labels.get("operation", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    try:
        with Client(f"{running.url}/v1/queuey", KEY) as client:
            client.create_queue("s")
            for n in range(20):
                client.post("s", f"{n}")
            streams = [Client(f"{running.url}/v1/queuey", KEY).stream("s") for _ in range(4)]
            time.sleep(FLUSH_INTERVAL * 2)
            for _ in range(4):
                found = scrape()
                assert found["queuey_open_streams", ""] == 4
                assert found["queuey_storage_duration_seconds_count", "write_messages"] == 20
            for stream in streams:
                stream.close()
                stream.client.close()
            time.sleep(FLUSH_INTERVAL * 2)
            assert scrape()["queuey_open_streams", ""] == 0
    finally:
        running.stop()
