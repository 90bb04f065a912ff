"""The real command line, over real HTTP."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUTH, KEY, Server, start_server, write_config

pytestmark = pytest.mark.e2e


def test_serve_creates_posts_and_reads_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        created = http.post("/v1/queuey", data={"queue_name": "e2e", "partitions": "2"})
        assert created.status_code == 201
        posted = http.post("/v1/queuey/e2e", content=b"hello", headers={"X-Partition": "2"})
        assert posted.status_code == 201
        key = posted.json()["messages"][0]["key"]
        read = http.get("/v1/queuey/e2e", params={"partitions": "2"})
        assert [m["message_id"] for m in read.json()["messages"]] == [key]
        assert http.get("/__heartbeat__").json() == {"status": "ok"}
        assert http.head("/v1/queuey/e2e").status_code == 200


def test_messages_survive_a_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = start_server(tmp_path, ["--config", str(config)])
    with httpx.Client(base_url=first.url, headers=AUTH) as http:
        http.post("/v1/queuey", data={"queue_name": "kept"})
        http.post("/v1/queuey/kept", content=b"still here")
    assert first.stop() == 0
    second = start_server(tmp_path, ["--config", str(config)])
    try:
        read = httpx.get(f"{second.url}/v1/queuey/kept", headers=AUTH)
        assert [m["body"] for m in read.json()["messages"]] == ["still here"]
    finally:
        second.stop()


def test_two_workers_share_one_database(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    running = start_server(tmp_path, ["--config", str(config), "--workers", "2"])
    try:
        httpx.post(f"{running.url}/v1/queuey", data={"queue_name": "shared"}, headers=AUTH)

        def post(index: int) -> str:
            with httpx.Client(base_url=running.url, headers=AUTH) as http:
                response = http.post("/v1/queuey/shared", content=f"m{index}".encode())
                assert response.status_code == 201, response.text
                key: str = response.json()["messages"][0]["key"]
                return key

        with ThreadPoolExecutor(8) as pool:
            keys = set(pool.map(post, range(200)))
        read = httpx.get(f"{running.url}/v1/queuey/shared?limit=1000", headers=AUTH)
        assert {m["message_id"] for m in read.json()["messages"]} == keys
        assert len(keys) == 200
    finally:
        running.stop()


def test_serve_without_config_generates_and_keeps_a_key(tmp_path: Path) -> None:
    first = start_server(tmp_path, [], env={"QUEUEY_CONFIG": ""})
    assert first.stop() == 0
    key = (tmp_path / "queuey-data" / "application_key").read_text().strip()
    assert len(key) == 32
    assert f"Authorization: Application {key}" in first.output()
    second = start_server(tmp_path, [], env={"QUEUEY_CONFIG": ""})
    try:
        response = httpx.get(
            f"{second.url}/v1/queuey", headers={"Authorization": f"Application {key}"}
        )
        assert response.status_code == 200
    finally:
        second.stop()
    # printed only when generated: the second start says where it is
    assert key not in second.output()
    assert f"application 'queuey', key in {tmp_path / 'queuey-data' / 'application_key'}" in (
        second.output()
    )
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / "queuey-data").stat().st_mode) == 0o700


def test_invalid_config_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="durability = fast\n")
    result = subprocess.run(
        [sys.executable, "-m", "queuey", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "durability" in result.stderr and "fast" in result.stderr


def test_an_unreachable_backend_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    # Nothing listens on port 1: the Cassandra back-end cannot connect, and start-up fails.
    result = subprocess.run(
        [sys.executable, "-m", "queuey", "serve", "--port", "0"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={
            **os.environ, "QUEUEY_CONFIG": "", "QUEUEY_STORAGE_BACKEND": "cassandra",
            "QUEUEY_STORAGE_HOST": "127.0.0.1:1", "QUEUEY_STORAGE_CONNECT_TIMEOUT": "2",
        },
    )  # fmt: skip
    assert result.returncode != 0
    assert "Back-end storage unavailable" in result.stderr
    assert "127.0.0.1:1" in result.stderr


def test_unknown_settings_are_warned_about(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="colour = blue\n")
    running = start_server(tmp_path, ["--config", str(config)])
    running.stop()
    assert "colour" in running.output()


def test_env_overrides_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    running = start_server(
        tmp_path, ["--config", str(config)], env={"QUEUEY_STORAGE_BACKEND": "memory"}
    )
    try:
        version = httpx.get(f"{running.url}/__version__").json()
        assert version["storage"] == "memory"
    finally:
        running.stop()
    assert KEY not in running.output()  # configured keys are never printed
