"""Streams against real ``queuey serve`` processes: across two processes on one sqlite store,
a WebSocket client from the ``websockets`` library, a subscriber killed mid-stream that resumes
with Last-Event-ID, and a server shutdown that ends its streams."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import (
    AUTH,
    Server,
    start_server,
    write_cassandra_config,
    write_config,
)

pytestmark = pytest.mark.e2e


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of a server-sent event stream, as {field: value}."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if fields:
                yield fields
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


def create(url: str, name: str, **params: Any) -> None:
    result = httpx.post(f"{url}/v1/queuey", data={"queue_name": name, **params}, headers=AUTH)
    assert result.status_code == 201, result.text


def post(url: str, queue: str, bodies: list[str]) -> list[str]:
    result = httpx.post(
        f"{url}/v1/queuey/{queue}",
        json={"messages": [{"body": body} for body in bodies]},
        headers=AUTH,
    )
    assert result.status_code == 201, result.text
    return [m["key"] for m in result.json()["messages"]]


def test_a_message_posted_through_one_process_reaches_subscribers_of_the_other(
    two_servers: tuple[Server, Server],
) -> None:
    _across(*two_servers, "news")


def test_two_servers_on_one_cassandra_node_stream_each_others_messages(tmp_path: Path) -> None:
    config = str(write_cassandra_config(tmp_path))
    first = start_server(tmp_path, ["--config", config])
    try:
        second = start_server(tmp_path, ["--config", config])
        try:
            _across(first, second, f"news-{uuid.uuid4().hex}")  # the keyspace outlives runs
        finally:
            second.stop()
    finally:
        first.stop()


def _across(subscribed: Server, posting: Server, queue: str) -> None:
    """A subscriber on one server gets, in order, what is posted through the other."""
    create(posting.url, queue)
    got: list[tuple[str, float]] = []
    url = f"{subscribed.url}/v1/queuey/{queue}/stream"
    with httpx.Client(timeout=30) as http, http.stream("GET", url, headers=AUTH) as r:
        assert r.status_code == 200
        events = sse_events(r)
        assert "retry" in next(events)
        sent: dict[str, float] = {}
        for index in range(5):
            start = time.monotonic()
            (key,) = post(posting.url, queue, [f"m{index}"])
            sent[key] = start
            event = next(events)
            while event.get("event") != "message":
                event = next(events)
            got.append((event["id"], time.monotonic() - sent[event["id"]]))
    assert [key for key, _ in got] == list(sent)
    assert max(delay for _, delay in got) < 2.0


async def _websocket_roundrobin(url: str) -> None:
    ws_url = url.replace("http://", "ws://") + "/v1/queuey/jobs/stream?mode=roundrobin&credit=2"
    headers = {"Authorization": AUTH["Authorization"]}
    with pytest.raises(InvalidStatus) as refusal:
        async with websockets.connect(ws_url):
            pass
    assert refusal.value.response.status_code == 401
    assert orjson.loads(refusal.value.response.body or b"")["error_msg"] == {
        "Unauthorized": "An application key is required: Authorization: Application <key>"
    }
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        keys = post(url, "jobs", ["a", "b", "c"])
        first = [orjson.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
        assert [m["message_id"] for m in first] == keys[:2]
        await ws.send(orjson.dumps({"ack": [m["claim_id"] for m in first]}).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply == {"acked": [m["claim_id"] for m in first], "failed": []}
        third = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert third["message_id"] == keys[2] and third["deliveries"] == 1
        await ws.send("{")
        assert "error" in orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        deleted = httpx.delete(f"{url}/v1/queuey/jobs", headers=AUTH)
        assert deleted.status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_a_websocket_client_of_the_websockets_library(server: Server) -> None:
    create(server.url, "jobs")
    asyncio.run(_websocket_roundrobin(server.url))


async def _slow_websocket(url: str) -> int:
    """A broadcast subscriber that reads nothing while 4 MB are posted; its close code."""
    ws_url = url.replace("http://", "ws://") + "/v1/queuey/firehose/stream"
    async with websockets.connect(
        ws_url, additional_headers={"Authorization": AUTH["Authorization"]}, max_queue=4
    ) as ws:
        for _ in range(4):
            post(url, "firehose", ["x" * 1000] * 1000)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 30)
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code


def test_a_broadcast_websocket_that_cannot_keep_up_is_closed_1008(tmp_path: Path) -> None:
    config = write_config(tmp_path, "\n[queuey]\nstream_buffer = 65536\n")
    running = start_server(tmp_path, ["--config", str(config)])
    try:
        create(running.url, "firehose")
        assert asyncio.run(_slow_websocket(running.url)) == 1008
    finally:
        running.stop()


SUBSCRIBER = textwrap.dedent(
    """
    import sys, httpx
    url, key, last = sys.argv[1], sys.argv[2], sys.argv[3]
    headers = {"Authorization": f"Application {key}"}
    if last:
        headers["Last-Event-ID"] = last
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        print("open", flush=True)  # the stream joined its queue's feed
        for line in response.iter_lines():
            if line.startswith("id: "):
                print(line[4:], flush=True)
    """
)


def _subscriber(url: str, last: str) -> subprocess.Popen[str]:
    """A subscriber in its own process, once its stream is open (its answer's head came)."""
    key = AUTH["Authorization"].split()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, url, key, last], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "open"
    return process


def _read_ids(process: subprocess.Popen[str], count: int) -> list[str]:
    assert process.stdout is not None
    return [process.stdout.readline().strip() for _ in range(count)]


def _kill(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def test_a_subscriber_killed_mid_stream_resumes_with_last_event_id_and_misses_nothing(
    server: Server,
) -> None:
    create(server.url, "log", partitions="3")
    url = f"{server.url}/v1/queuey/log/stream"
    first = _subscriber(url, "")  # a stream starts with what is posted after it opened
    try:
        posted = post(server.url, "log", [f"a{i}" for i in range(20)])
        seen = _read_ids(first, 10)
    finally:
        _kill(first)
    posted += post(server.url, "log", [f"b{i}" for i in range(20)])  # while it is away
    second = _subscriber(url, seen[-1])
    try:
        rest = _read_ids(second, len(posted) - len(seen))
        posted += post(server.url, "log", ["live"])
        rest += _read_ids(second, 1)
    finally:
        _kill(second)
    assert seen + rest == posted


def test_shutdown_ends_open_streams_and_the_server_exits(tmp_path: Path) -> None:
    running = start_server(tmp_path, ["--config", str(write_config(tmp_path))])
    create(running.url, "q")
    with httpx.Client(timeout=30) as http:
        with http.stream("GET", f"{running.url}/v1/queuey/q/stream", headers=AUTH) as r:
            events = sse_events(r)
            assert "retry" in next(events)
            start = time.monotonic()
            running.process.send_signal(2)  # SIGINT: graceful shutdown
            assert list(events) == []  # the stream ends
        assert running.process.wait(timeout=15) == 0
        assert time.monotonic() - start < 10
