"""``queuey tail``, ``token``, ``purge`` and ``redrive`` through the entry point."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from queuey.client import Client
from tests.cli.conftest import Run
from tests.cli.test_entry_point import QUEUEY
from tests.client.servers import two_servers
from tests.e2e.conftest import KEY, Server

pytestmark = pytest.mark.e2e


def test_help_lists_the_stream_and_owner_commands(cli: Run) -> None:
    listed = cli("--help").out
    for command in ("tail", "token", "purge", "redrive"):
        assert command in listed


def test_token_prints_a_token_that_works(cli: Run, queue: str, server: Server) -> None:
    cli("create", queue)
    cli("post", queue, "shared")
    minted = cli("token", "user:ann", "--queues", f"{queue[:4]}*", "--rights", "read,stream",
                 "--ttl", "60")  # fmt: skip
    assert minted.code == 0, minted.err
    token = minted.out.strip()
    assert token.count(".") == 2 and "\n" not in token
    read = httpx.get(
        f"{server.url}/v1/queuey/{queue}", headers={"Authorization": f"Bearer {token}"}
    )
    assert [m["body"] for m in read.json()["messages"]] == ["shared"]
    described = cli("token", "user:ann", "--queues", queue, "--rights", "read", "--json").json()
    assert set(described) == {"token", "expires"}
    refused = cli("token", "user:ann", "--queues", queue, "--rights", "read,fly")
    assert refused.code == 1 and "rights" in refused.err
    assert cli("token", "user:ann", "--queues", queue).code == 2  # --rights is required


def test_purge_and_redrive(cli: Run, queue: str) -> None:
    dead = f"{queue}-dead"
    cli("create", dead)
    cli("create", queue, "--max-deliveries", "1", "--dead-letter-queue", dead)
    cli("post", queue, "job 1")
    cli("post", queue, "job 2")
    claims = [m["claim_id"] for m in cli("claim", queue, "--limit", "2", "--json").json()]
    cli("extend", queue, *claims, "--ttl", "0")
    assert cli("claim", queue, "--json").json() == []  # both dead-lettered
    moved = cli("redrive", dead, "--limit", "1")
    assert (moved.code, moved.out.strip()) == (0, f"moved 1 messages from {dead}")
    assert cli("redrive", dead, "--json").json() == {"moved": 1}
    purged = cli("purge", queue)
    assert (purged.code, purged.out.strip()) == (0, f"purged 2 messages from {queue}")
    assert cli("purge", queue, "--json").json() == {"purged": 0}
    assert cli("purge", f"{queue}-missing").code == 1
    assert cli("redrive", queue).code == 1  # nothing sends its dead letters there


def tail(*argv: str, urls: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QUEUEY_KEY": KEY}
    return subprocess.Popen(
        [QUEUEY, "tail", *argv, *(f"--url={url}" for url in urls)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip


def test_tail_prints_human_lines_and_acks_round_robin_messages(server: Server, queue: str) -> None:
    url = f"{server.url}/v1/queuey"
    with Client(url, KEY) as client:
        client.create_queue(queue)
        posted = [client.post(queue, f"line {n}") for n in range(2)]
        follower = tail(queue, "--since", posted[0].timestamp, "--count", "2", urls=[url])
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert out.decode().splitlines() == [
            f"{p.timestamp} {p.ref} line {n}" for n, p in enumerate(posted)
        ]
        jobs = f"{queue}-jobs"
        client.create_queue(jobs, policy="roundrobin")
        for n in range(3):
            client.post(jobs, f"job {n}")
        for transport in ([], ["--websocket"]):
            follower = tail(jobs, "--count", "1", "--credit", "1", "--json", *transport, urls=[url])
            out, err = follower.communicate(timeout=60)
            assert follower.returncode == 0, err
            [line] = out.splitlines()
            assert orjson.loads(line)["deliveries"] == 1
        assert client.stats(jobs).messages == 1  # two acked
    missing = tail(f"{queue}-missing", urls=[url])
    _, err = missing.communicate(timeout=60)
    assert missing.returncode == 1 and b"404" in err


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with two_servers(tmp_path) as running:
        yield running


def test_tail_resumes_after_a_disconnect_missing_nothing(
    servers: tuple[Server, Server], queue: str
) -> None:
    urls = [f"{server.url}/v1/queuey" for server in servers]
    with Client(urls, KEY) as client:
        client.create_queue(queue)
        start = f"{time.time():.7f}"
        follower = tail(queue, "--json", "--since", start, "--count", "4", urls=urls)
        assert follower.stdout is not None
        client.post(queue, "one")
        first = orjson.loads(follower.stdout.readline())
        assert first["body"] == "one"
        servers[0].stop()  # the stream is cut
        for body in ("two", "three", "four"):
            client.post(queue, body)  # to the second server
        out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert [orjson.loads(line)["body"] for line in out.splitlines()] == ["two", "three", "four"]
