"""The AweQ and RestMQ front ends through a real ``queuey serve`` with two worker processes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUTH, KEY, start_server, write_config

pytestmark = pytest.mark.e2e

LEASE = 4
FRONT_ENDS = "[restmq]\napplication = queuey\n\n[aweq]\napplication = queuey\nqueue = work\n"


def test_aweq_and_restmq_clients_work_across_worker_processes(tmp_path: Path) -> None:
    config = write_config(tmp_path, "\n" + FRONT_ENDS)
    server = start_server(tmp_path, ["--config", str(config), "--workers", "2"])
    try:
        basic = httpx.BasicAuth("queuey", KEY)
        assert httpx.get(f"{server.url}/get-stats").status_code == 401
        created = httpx.post(
            f"{server.url}/v1/queuey",
            data={"queue_name": "work", "claim_ttl": str(LEASE)},
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        keys = []
        for n in range(12):
            sent = httpx.post(f"{server.url}/send-message", json={"message": n + 1}, auth=basic)
            assert sent.status_code == 200, sent.text
            keys.append(sent.json()["key"])
        received_at = time.monotonic()
        received = httpx.get(f"{server.url}/receive-message?count=12", auth=basic).json()
        assert [item["key"] for item in received["messages"]] == keys
        assert [item["message"] for item in received["messages"]] == list(range(1, 13))
        for key in keys[:10]:  # each on a new connection, so through either worker
            deleted = httpx.delete(f"{server.url}/delete-message/{key}", auth=basic)
            assert deleted.json() == {"status": "okay"}
        stats = httpx.get(f"{server.url}/get-stats", auth=basic).json()["stats"]
        assert (stats["queue_length"], stats["checkouts_count"]) == (0, 2)
        time.sleep(max(0.0, received_at + LEASE + 0.2 - time.monotonic()))  # the leases end
        again = httpx.get(f"{server.url}/receive-message?count=12", auth=basic).json()
        assert [item["key"] for item in again["messages"]] == keys[10:]
        assert [item["retry_count"] for item in again["messages"]] == [1, 1]

        key = httpx.post(f"{server.url}/q/test", data={"value": "foobar"}, auth=basic).text
        popped = httpx.get(f"{server.url}/q/test", auth=basic)
        assert popped.json() == {"key": key.strip(), "value": "foobar", "count": 0}
        assert httpx.get(f"{server.url}/q/test", auth=basic).status_code == 204
        stats = httpx.get(f"{server.url}/stats", auth=basic).json()
        assert stats["queues"]["test"] == {"name": "test", "len": 0, "status": 1,
                                           "policy": "broadcast"}  # fmt: skip
    finally:
        server.stop()
