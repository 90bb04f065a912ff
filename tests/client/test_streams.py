"""Streams, tokens, purge and redrive of ``Client`` and ``AsyncClient`` against real servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from queuey.client import (
    AsyncClient,
    AuthFailed,
    BadRequest,
    ClaimedMessage,
    ClaimExpired,
    Client,
    ConnectionFailed,
    NotFound,
)
from tests.client.servers import two_servers
from tests.e2e.conftest import KEY, Server

pytestmark = pytest.mark.e2e


def dead_letter(client: Client, jobs: str, count: int) -> None:
    """Post ``count`` messages to ``jobs`` (max_deliveries 1) and dead-letter them all."""
    for n in range(count):
        client.post(jobs, f"job {n}")
    client.release(jobs, client.claim(jobs, limit=count))
    assert client.claim(jobs, limit=count) == []  # exhausted: moved to the dead letters


def test_purge_redrive_and_tokens(client: Client, queue: str, url: str) -> None:
    dead = f"{queue}-dead"
    client.create_queue(dead)
    client.create_queue(queue, max_deliveries=1, dead_letter_queue=dead)
    dead_letter(client, queue, 3)
    assert client.redrive(dead, limit=2) == 2
    assert client.redrive(dead) == 1
    assert client.redrive(dead) == 0
    assert sorted(m.body for m in client.read(queue)) == ["job 0", "job 1", "job 2"]
    assert client.purge(queue) == 3
    assert client.read(queue) == []
    with pytest.raises(NotFound):
        client.purge(f"{queue}-missing")
    token = client.mint_token("user:ann", [queue], ["read", "post"], ttl=60)
    assert token.expires > 0
    with Client(url, timeout=5) as page:
        page.servers.headers["Authorization"] = f"Bearer {token.token}"
        page.post(queue, "from a page")
        assert [m.body for m in page.read(queue)] == ["from a page"]
        with pytest.raises(AuthFailed):
            page.purge(queue)
    with pytest.raises(BadRequest) as refused:
        client.mint_token("user:ann", [queue], ["fly"])  # type: ignore[list-item]
    assert "rights" in refused.value.error_msg


async def test_purge_redrive_and_tokens_awaited(url: str, queue: str) -> None:
    async with AsyncClient(url, KEY) as client:
        await client.create_queue(queue)
        await client.post(queue, "one")
        assert await client.purge(queue) == 1
        with pytest.raises(BadRequest) as refused:
            await client.redrive(queue)  # not a dead-letter queue, and no "to"
        assert "to" in refused.value.error_msg
        await client.create_queue(f"{queue}-back")
        assert await client.redrive(queue, to=f"{queue}-back") == 0
        token = await client.mint_token("bid:ann@example.com", [queue], ["stream"])
        assert token.token.count(".") == 2  # a JWT


def test_a_broadcast_stream_follows_and_starts_where_asked(client: Client, queue: str) -> None:
    client.create_queue(queue)
    with client.stream(queue) as stream:
        posted = [client.post(queue, f"m{n}") for n in range(3)]
        got = [next(stream) for _ in range(3)]
        assert [m.body for m in got] == ["m0", "m1", "m2"]
        assert [m.message_id for m in got] == [p.key for p in posted]
        assert stream.last_event_id == posted[2].key
    with client.stream(queue, last_event_id=posted[0].key) as resumed:
        assert [next(resumed).body for _ in range(2)] == ["m1", "m2"]
    with client.stream(queue, since=posted[1].timestamp) as since:
        assert next(since).body == "m1"


def test_a_stream_of_a_missing_queue_or_without_rights_is_refused(
    client: Client, queue: str, url: str
) -> None:
    with pytest.raises(NotFound):
        client.stream(queue)
    with pytest.raises(NotFound):
        client.stream_socket(queue)
    client.create_queue(queue)
    with Client(url, "f" * 32) as stranger, pytest.raises(AuthFailed):
        stranger.stream(queue)
    with pytest.raises(BadRequest) as refused:
        client.stream(queue, mode="broadcast", credit=5)
    assert refused.value.error_msg == {"credit": "Only with mode=roundrobin"}


def test_deleting_the_queue_ends_its_streams(client: Client, queue: str) -> None:
    client.create_queue(queue)
    stream, socket = client.stream(queue), client.stream_socket(queue)
    client.post(queue, "last")
    assert next(stream).body == next(socket).body == "last"
    client.delete_queue(queue)
    with pytest.raises(NotFound):
        next(stream)
    with pytest.raises(NotFound):
        next(socket)


def test_round_robin_over_a_websocket_acks_extends_and_credits(client: Client, queue: str) -> None:
    client.create_queue(queue, policy="roundrobin", claim_ttl=60)
    for n in range(3):
        client.post(queue, f"job {n}")
    with client.stream_socket(queue, credit=2) as jobs:
        first, second = next(jobs), next(jobs)
        assert isinstance(first, ClaimedMessage) and isinstance(second, ClaimedMessage)
        assert [first.body, second.body] == ["job 0", "job 1"]
        assert first.deliveries == 1
        assert jobs.ack([first]) == [first.claim_id]
        third = next(jobs)  # the ack gave the credit back
        assert isinstance(third, ClaimedMessage) and third.body == "job 2"
        assert jobs.extend([second], 120) == [second.claim_id]
        with pytest.raises(ClaimExpired) as expired:
            jobs.ack([first, second])
        assert (expired.value.done, expired.value.failed) == ([second.claim_id], [first.claim_id])
        jobs.credit(5)
        with pytest.raises(BadRequest):
            jobs.credit(0)
        assert jobs.extend([third], 0) == [third.claim_id]  # released: comes back
        again = next(jobs)
        assert isinstance(again, ClaimedMessage)
        assert (again.body, again.deliveries) == ("job 2", 2)
    assert client.stats(queue).messages == 1


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with two_servers(tmp_path) as running:
        yield running


def _urls(servers: tuple[Server, Server]) -> list[str]:
    return [f"{server.url}/v1/queuey" for server in servers]


@pytest.mark.parametrize("websocket", [False, True], ids=["sse", "websocket"])
def test_a_cut_stream_resumes_on_the_next_server_missing_nothing(
    servers: tuple[Server, Server], queue: str, websocket: bool
) -> None:
    first, _ = servers
    with Client(_urls(servers), KEY) as client:
        client.create_queue(queue)
        stream = client.stream_socket(queue) if websocket else client.stream(queue)
        with stream:
            client.post(queue, "before")
            assert next(stream).body == "before"
            client.post(queue, "meanwhile")  # on the first server, before it stops
            stopper = threading.Thread(target=first.stop)
            stopper.start()
            stopper.join()
            for n in range(3):
                client.post(queue, f"after {n}")  # fails over to the second
            got = [next(stream).body for _ in range(4)]
        assert got == ["meanwhile", "after 0", "after 1", "after 2"]
        assert client.servers.current == 1


async def test_an_async_stream_resumes_after_a_cut(
    servers: tuple[Server, Server], queue: str
) -> None:
    first, _ = servers
    async with AsyncClient(_urls(servers), KEY) as client:
        await client.create_queue(queue, policy="broadcast")
        async with (
            await client.stream(queue) as stream,
            await client.stream_socket(queue) as socket,
        ):
            await client.post(queue, "before")
            assert (await anext(stream)).body == (await anext(socket)).body == "before"
            first.stop()
            await client.post(queue, "after")
            assert (await anext(stream)).body == (await anext(socket)).body == "after"
            assert stream.last_event_id == socket.last_event_id


async def test_async_round_robin_over_a_websocket(url: str, queue: str) -> None:
    async with AsyncClient(url, KEY) as client:
        await client.create_queue(queue, policy="roundrobin")
        await client.post(queue, "job")
        async with await client.stream_socket(queue, ttl=30) as jobs:
            job = await anext(jobs)
            assert isinstance(job, ClaimedMessage)
            assert await jobs.extend([job], 60) == [job.claim_id]
            assert await jobs.ack([job]) == [job.claim_id]
            await jobs.credit(3)
        assert (await client.stats(queue)).messages == 0


def test_a_stream_with_no_server_to_reach_fails_to_open(closed_url: str) -> None:
    with Client(closed_url, KEY) as client:
        with pytest.raises(ConnectionFailed):
            client.stream("anything")
        with pytest.raises(ConnectionFailed):
            client.stream_socket("anything")
