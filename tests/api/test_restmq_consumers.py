"""RestMQ's consumers and purge (api.md Part 4, reference/restmq.md) on every back-end:
``/c/<queue>`` (COMET), ``/ws/<queue>`` (WebSocket), ``DELETE /q/<queue>``, by the queue's
policy, paused and resumed by ``/control/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from falcon.errors import WebSocketDisconnected
from falcon.testing import ASGIWebSocketSimulator

from queuey.api.restmq_consumers import Consumers, SocketFraming
from queuey.core.models import Caller
from tests.api.conftest import AUTH, Api
from tests.api.frontends import BASIC, every_front, front_ends_on
from tests.api.test_restmq import add, pop, post
from tests.api.test_streams import TIMEOUT, Events, _hub, stream
from tests.conftest import SHARED_BACKENDS

__all__ = ["every_front"]


@asynccontextmanager
async def comet(
    front: Api, queue: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Events]:
    path = f"/c/{queue}"
    async with front.http.get_stream(path, headers=BASIC if headers is None else headers) as got:
        assert got.status_code == 200
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        yield Events(got)


@asynccontextmanager
async def socket(
    front: Api, queue: str, headers: dict[str, str] | None = None
) -> AsyncIterator[ASGIWebSocketSimulator]:
    async with front.http.simulate_ws(
        f"/ws/{queue}", headers=BASIC if headers is None else headers
    ) as ws:
        yield ws


async def lines(events: Events, count: int) -> list[dict[str, Any]]:
    """The next ``count`` COMET lines, each a JSON object ended by CRLF."""
    found = []
    for line in await events.lines(count):
        assert line.endswith(b"\r")
        found.append(orjson.loads(line))
    return found


async def frame(ws: ASGIWebSocketSimulator) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.receive_text(), TIMEOUT))
    return found


async def length(front: Api, queue: str) -> int:
    stats = await front.http.simulate_get(f"/stats/{queue}", headers=BASIC)
    found: int = stats.json["len"]
    return found


async def test_comet_gets_what_was_posted_before_it_bound_then_each_new_value(
    every_front: Api,
) -> None:
    first = await add(every_front, "test", "foobar")  # curl -d value=foobar /q/test
    async with comet(every_front, "test") as events:  # curl /c/test
        assert await lines(events, 1) == [{"key": first, "value": "foobar"}]
        second = await add(every_front, "test", "second")
        assert await lines(events, 1) == [{"key": second, "value": "second"}]
        assert await events.quiet(0.2) == b""
    # A broadcast consumer reads: the values stay for the queue's other readers.
    assert await length(every_front, "test") == 2


async def test_a_consumer_binds_before_its_queue_exists(every_front: Api) -> None:
    async with comet(every_front, "later") as events, socket(every_front, "later") as ws:
        key = await add(every_front, "later", "v")
        assert await lines(events, 1) == [{"key": key, "value": "v"}]
        assert await frame(ws) == {"key": key, "value": "v"}


async def test_broadcast_gives_every_consumer_every_value(every_front: Api) -> None:
    async with (
        comet(every_front, "fan") as one,
        comet(every_front, "fan") as two,
        socket(every_front, "fan") as ws,
    ):
        keys = [await add(every_front, "fan", f"m{i}") for i in range(3)]
        expected = [{"key": k, "value": f"m{i}"} for i, k in enumerate(keys)]
        assert await lines(one, 3) == expected
        assert await lines(two, 3) == expected
        assert [await frame(ws) for _ in keys] == expected


async def test_roundrobin_gives_each_value_to_one_consumer_once(every_front: Api) -> None:
    await post(every_front, "/p/work", policy="roundrobin")
    async with comet(every_front, "work") as one, socket(every_front, "work") as ws:
        keys = [await add(every_front, "work", f"m{i}") for i in range(6)]
        got = [item["key"] for item in await frames(ws, 0.5)]
        first = [item["key"] for item in await lines(one, len(keys) - len(got))]
        assert got and first  # both had their turns
        assert sorted(got + first) == sorted(keys)  # each exactly once, to one of them
        assert await one.quiet(0.2) == b""
    # What was sent was acknowledged: the queue is empty.
    assert await length(every_front, "work") == 0
    assert (await pop(every_front, "work")).status_code == 204


async def frames(ws: ASGIWebSocketSimulator, quiet: float) -> list[dict[str, Any]]:
    """The frames that come until none came for ``quiet`` seconds."""
    found = []
    while True:
        try:
            found.append(orjson.loads(await asyncio.wait_for(ws.receive_text(), quiet)))
        except TimeoutError:
            return found


@pytest.mark.parametrize("delivery", ["at_least_once", "at_most_once"])
async def test_a_consumer_that_leaves_gives_back_what_it_was_not_sent(
    every_front: Api, delivery: str
) -> None:
    created = await every_front.http.simulate_post(
        "/v1/queuey", headers=AUTH,
        json={"queue_name": "jobs", "policy": "roundrobin", "delivery": delivery},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    consumers = Consumers(every_front.service, _hub(every_front), "queuey")
    consumer = await consumers.bind(Caller("queuey"), "jobs", SocketFraming("jobs"))
    keys = [await add(every_front, "jobs", f"m{i}") for i in range(3)]
    for _ in range(200):  # claimed for it, never sent
        if len(consumer.framing.claims) == 3:
            break
        await asyncio.sleep(0.01)
    assert len(consumer.framing.claims) == 3
    assert (await pop(every_front, "jobs")).status_code == 204

    await consumer.close()

    popped = [(await pop(every_front, "jobs")).json for _ in keys]
    assert [(p["key"], p["count"]) for p in popped] == [(k, 0) for k in keys]


async def test_stop_pauses_consumers_and_start_resumes_them(every_front: Api) -> None:
    async with comet(every_front, "flow") as events, socket(every_front, "flow") as ws:
        stopped = await post(every_front, "/control/flow", status="stop")
        assert stopped.json == {"stat": {"queue": "flow", "status": 0}}
        key = await add(every_front, "flow", "held")
        assert await events.quiet(0.5) == b""
        await post(every_front, "/control/flow", status="start")
        assert await lines(events, 1) == [{"key": key, "value": "held"}]
        assert await frame(ws) == {"key": key, "value": "held"}


async def test_delete_purges_the_queue_and_ends_its_consumers(every_front: Api) -> None:
    await post(every_front, "/p/gone", policy="roundrobin")
    await post(every_front, "/control/gone", status="stop")
    async with comet(every_front, "gone") as events, socket(every_front, "gone") as ws:
        keys = [await add(every_front, "gone", f"m{i}") for i in range(2)]

        deleted = await every_front.http.simulate_delete("/q/gone", headers=BASIC)

        assert deleted.status_code == 200, deleted.text
        assert deleted.json == {"queue": "gone", "status": 1, "purged": len(keys)}
        await events.ended()
        assert events.buffer == b""  # no line at the end (RestMQ wrote "null")
        with pytest.raises(WebSocketDisconnected):
            await ws.receive_text()
        assert ws.close_code == 1000
    assert await length(every_front, "gone") == 0
    # The queue stays, its policy and status too.
    policy = await every_front.http.simulate_get("/p/gone", headers=BASIC)
    assert policy.json == {"queue": "gone", "value": "roundrobin"}
    control = await every_front.http.simulate_get("/control/gone", headers=BASIC)
    assert control.json["status"] == {"queue": "gone", "status": 0}
    again = await every_front.http.simulate_delete("/q/gone", headers=BASIC)
    assert again.json == {"queue": "gone", "status": 0, "purged": 0}
    never = await every_front.http.simulate_delete("/q/never", headers=BASIC)
    assert never.json == {"queue": "never", "status": 0, "purged": 0}


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
async def test_delete_through_another_process_ends_the_consumers_bound_here(
    backend: str, tmp_path: Path
) -> None:
    async with (
        front_ends_on(backend, tmp_path) as here,
        front_ends_on(backend, tmp_path) as there,  # another server process on the same store
        comet(here, "gone") as events,
        socket(here, "gone") as ws,
        stream(here, "gone") as v1,
    ):
        key = await add(there, "gone", "v")
        assert await lines(events, 1) == [{"key": key, "value": "v"}]
        assert await frame(ws) == {"key": key, "value": "v"}
        assert [m["message_id"] for m in await v1.messages(1)] == [key.split(":")[1]]

        deleted = await there.http.simulate_delete("/q/gone", headers=BASIC)

        assert deleted.json == {"queue": "gone", "status": 1, "purged": 1}
        await events.ended()
        assert events.buffer == b""
        with pytest.raises(WebSocketDisconnected):
            await ws.receive_text()
        assert ws.close_code == 1000
        # The queue's v1 streams go on, and a consumer bound since stays bound.
        async with comet(here, "gone") as later:
            key = await add(there, "gone", "after")
            assert await lines(later, 1) == [{"key": key, "value": "after"}]
            assert [m["message_id"] for m in await v1.messages(1)] == [key.split(":")[1]]
            assert await later.quiet(0.3) == b""


async def test_consumers_need_the_applications_credentials(every_front: Api) -> None:
    for path in ("/c/test", "/q/test"):
        refused = await every_front.http.simulate_request(
            "GET" if path.startswith("/c") else "DELETE", path
        )
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
    with pytest.raises(WebSocketDisconnected) as refusal:
        async with socket(every_front, "test", {}):
            pass
    assert refusal.value.code == 3401
    async with comet(every_front, "test", AUTH) as events:  # the Application header works too
        key = await add(every_front, "test", "v")
        assert await lines(events, 1) == [{"key": key, "value": "v"}]


async def test_a_bad_queue_name_is_a_json_error(every_front: Api) -> None:
    for name in ("x" * 65, "a%20b"):  # a queue Queuey cannot keep is not created
        result = await every_front.http.simulate_get(f"/c/{name}", headers=BASIC)
        assert result.status_code == 400, name
        assert "queue_name" in result.json["error_msg"]
    with pytest.raises(WebSocketDisconnected) as refusal:
        async with socket(every_front, "a/b"):
            pass
    assert refusal.value.code == 3404
