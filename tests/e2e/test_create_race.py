"""Workers starting together each create the queues they need (as the original Queuey's ``qdo``
workers do), through two ``queuey serve`` processes sharing one SQLite store."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUTH, start_server, write_config

pytestmark = pytest.mark.e2e

WORKERS = 8
QUEUES = ("qdo_error", "qdo_jobs", "qdo_done")


def test_concurrent_creations_with_the_same_settings_all_get_201(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    servers = [start_server(tmp_path, ["--config", config]) for _ in range(2)]
    try:
        start = threading.Barrier(WORKERS)
        answers: list[list[httpx.Response]] = [[] for _ in range(WORKERS)]

        def worker(n: int) -> None:
            url = servers[n % 2].url
            with httpx.Client(timeout=30) as client:
                start.wait()
                for name in QUEUES:
                    data = {"queue_name": name, "partitions": "7"}
                    answers[n].append(client.post(f"{url}/v1/queuey", data=data, headers=AUTH))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        for i, name in enumerate(QUEUES):
            results = [answers[n][i] for n in range(WORKERS)]
            assert [r.status_code for r in results] == [201] * WORKERS, [r.text for r in results]
            assert {(r.json()["queue_name"], r.json()["partitions"]) for r in results} == {
                (name, 7)
            }
            assert sorted(r.json()["created"] for r in results) == [False] * (WORKERS - 1) + [True]
        different = httpx.post(
            f"{servers[1].url}/v1/queuey", data={"queue_name": "qdo_jobs", "partitions": "3"},
            headers=AUTH,
        )  # fmt: skip
        assert different.status_code == 409
        assert different.json()["error_msg"] == {
            "QueueAlreadyExists": "Queue of that name already exists."
        }
    finally:
        for server in servers:
            server.stop()
