"""`queuey serve` on the Cassandra test node: several worker processes share one keyspace, and
a post through one server wakes, on another, only the waiters of its own queue."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import AUTH, Server, start_server, write_cassandra_config

pytestmark = pytest.mark.e2e


def test_two_workers_share_one_cassandra_store(tmp_path: Path) -> None:
    config = write_cassandra_config(tmp_path)
    running = start_server(tmp_path, ["--config", str(config), "--workers", "2"])
    try:
        created = httpx.post(
            f"{running.url}/v1/queuey", data={"queue_name": "e2e-shared"}, headers=AUTH
        )
        assert created.status_code in (201, 409), created.text  # 409: left by an earlier run

        def post(index: int) -> str:
            with httpx.Client(base_url=running.url, headers=AUTH) as http:
                response = http.post("/v1/queuey/e2e-shared", content=f"m{index}".encode())
                assert response.status_code == 201, response.text
                key: str = response.json()["messages"][0]["key"]
                return key

        with ThreadPoolExecutor(8) as pool:
            keys = set(pool.map(post, range(100)))
        read = httpx.get(f"{running.url}/v1/queuey/e2e-shared?limit=1000", headers=AUTH)
        assert keys <= {m["message_id"] for m in read.json()["messages"]}
        assert len(keys) == 100
        assert httpx.get(f"{running.url}/__heartbeat__").json() == {"status": "ok"}
    finally:
        running.stop()


def waiter_wakes(url: str) -> float:
    """The server's count of woken long polls and stream feeds (``GET /metrics``)."""
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "queuey_waiter_wakes_total":
                return sample.value
    raise AssertionError("no queuey_waiter_wakes_total in /metrics")


def test_a_post_through_one_server_wakes_only_the_waiters_of_its_queue_on_another(
    tmp_path: Path,
) -> None:
    config = str(write_cassandra_config(tmp_path))
    first = start_server(tmp_path, ["--config", config])
    try:
        second = start_server(tmp_path, ["--config", config])
        try:
            _only_its_queue(first, second, uuid.uuid4().hex[:12])  # the keyspace outlives runs
        finally:
            second.stop()
    finally:
        first.stop()


def _only_its_queue(waiting: Server, posting: Server, run: str) -> None:
    x, y = f"x-{run}", f"y-{run}"
    for name in (x, y):
        created = httpx.post(f"{posting.url}/v1/queuey", data={"queue_name": name}, headers=AUTH)
        assert created.status_code == 201, created.text

    def post(queue: str, body: str) -> None:
        response = httpx.post(f"{posting.url}/v1/queuey/{queue}", content=body, headers=AUTH)
        assert response.status_code == 201, response.text

    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(
            httpx.get, f"{waiting.url}/v1/queuey/{y}?wait=20", headers=AUTH, timeout=30
        )
        time.sleep(1.0)  # the poller's first look wakes every waiter once: let it pass
        before = waiter_wakes(waiting.url)
        for index in range(10):
            post(x, f"x{index}")
        time.sleep(0.5)  # ten change-log polls of the waiting server
        assert waiter_wakes(waiting.url) == before  # y's long poll was not woken
        assert not poll.done()

        posted = time.monotonic()
        post(y, "for y")
        answer = poll.result(timeout=10)
        delay = time.monotonic() - posted
    assert answer.status_code == 200, answer.text
    assert [m["body"] for m in answer.json()["messages"]] == ["for y"]
    assert waiter_wakes(waiting.url) == before + 1
    assert delay < 1.0, delay  # a change-log poll is 50 ms; the rest is the loaded machine
