"""`queuey serve` on the Cassandra test node: several worker processes share one keyspace."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUTH, start_server, write_cassandra_config

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
