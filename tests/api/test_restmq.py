"""The RestMQ front end (api.md Part 4, reference/restmq.md), replaying RestMQ's README
examples that need no consumer (those are in test_restmq_consumers.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from tests.api.conftest import AUTH, FORM, Api
from tests.api.frontends import BASIC, front

__all__ = ["front"]


async def post(front: Api, path: str, **params: Any) -> Any:
    return await front.http.simulate_post(
        path, headers=BASIC, body=urlencode(params), content_type=FORM
    )


async def add(front: Api, queue: str, value: str, **params: Any) -> str:
    result = await post(front, f"/q/{queue}", value=value, **params)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/plain")
    assert result.text.endswith("\r\n")
    key: str = result.text.strip()
    return key


async def pop(front: Api, queue: str) -> Any:
    return await front.http.simulate_get(f"/q/{queue}", headers=BASIC)


async def command(front: Api, **fields: Any) -> dict[str, Any]:
    result = await post(front, "/queue", body=orjson.dumps(fields).decode())
    assert result.status_code == 200, result.text
    reply: dict[str, Any] = result.json
    return reply


async def test_a_posted_value_pops_once_with_a_restmq_key(front: Api) -> None:
    key = await add(front, "test", "foobar")  # curl -d value=foobar /q/test
    queue, _, message_id = key.partition(":")
    assert queue == "test" and len(message_id) == 32
    [stored] = await front.read("test")  # an ordinary queue, created on first use
    assert stored["message_id"] == message_id

    popped = await pop(front, "test")

    assert popped.status_code == 200
    assert popped.json == {"key": key, "value": "foobar", "count": 0}
    assert (await pop(front, "test")).status_code == 204
    assert await front.read("test") == []  # at most once: gone


async def test_msg_is_another_name_for_value_and_ttl_bounds_a_message_life(front: Api) -> None:
    await add(front, "test", "short", ttl=1)
    result = await post(front, "/q/test", msg="kept")
    assert result.status_code == 200, result.text
    front.clock.advance(1)

    assert (await pop(front, "test")).json["value"] == "kept"
    assert (await pop(front, "test")).status_code == 204


@pytest.mark.parametrize(
    ("params", "field"), [({}, "value"), ({"value": ""}, "value"),
                          ({"value": "v", "ttl": "soon"}, "ttl")],
)  # fmt: skip
async def test_a_bad_post_is_a_json_error(front: Api, params: dict[str, str], field: str) -> None:
    result = await post(front, "/q/test", **params)
    assert result.status_code == 400
    assert field in result.json["error_msg"]


async def test_a_queue_name_queuey_cannot_keep_is_a_json_error(front: Api) -> None:
    result = await post(front, "/q/no%20spaces", value="v")
    assert result.status_code == 400
    assert "queue_name" in result.json["error_msg"]


async def test_popping_a_queue_that_does_not_exist_finds_nothing(front: Api) -> None:
    assert (await pop(front, "nothing-yet")).status_code == 204


async def test_the_json_protocol_adds_peeks_counting_reads_takes_and_deletes(
    front: Api,
) -> None:
    added = await command(front, cmd="add", queue="jobs", value="first")
    await command(front, cmd="add", queue="jobs", value="second")
    key = added["key"]
    assert added == {"queue": "jobs", "value": "first", "key": key}

    peeks = [await command(front, cmd="get", queue="jobs") for _ in range(2)]
    assert peeks == [
        {"queue": "jobs", "value": "first", "key": key, "count": 1},
        {"queue": "jobs", "value": "first", "key": key, "count": 2},
    ]
    taken = await command(front, cmd="take", queue="jobs")
    assert taken == {"queue": "jobs", "value": "first", "key": key}

    second = await command(front, cmd="get", queue="jobs")
    deleted = await command(front, cmd="del", queue="jobs", key=second["key"])
    assert deleted == {"queue": "jobs", "deleted": True, "key": second["key"]}
    again = await command(front, cmd="del", queue="jobs", key=second["key"])
    assert again["deleted"] is False
    assert await command(front, cmd="get", queue="jobs") == {"error": "empty queue"}
    assert await command(front, cmd="take", queue="jobs") == {"error": "empty queue"}


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[1]", '{"queue": "jobs"}', '{"cmd": "push", "queue": "jobs"}',
     '{"cmd": "add", "queue": "jobs"}', '{"cmd": "get"}',
     '{"cmd": "del", "queue": "jobs", "key": "other:1"}'],
)  # fmt: skip
async def test_a_bad_json_command_is_a_json_error(front: Api, body: str) -> None:
    result = await post(front, "/queue", body=body)
    assert result.status_code == 400, result.text
    assert result.json["status"] == "error"


async def test_stop_pauses_the_queue_and_start_resumes_it(front: Api) -> None:
    key = await add(front, "test", "waiting")

    stopped = await post(front, "/control/test", status="stop")

    assert stopped.json == {"stat": {"queue": "test", "status": 0}}
    shown = await front.http.simulate_get("/control/test", headers=BASIC)
    assert shown.json == {"queue": "test", "status": {"queue": "test", "status": 0}}
    assert (await front.http.simulate_get("/v1/queuey/test/stats", headers=AUTH)).json["stats"][
        "paused"
    ]
    await add(front, "test", "accepted while stopped")
    assert (await pop(front, "test")).status_code == 204

    started = await post(front, "/control/test", status="start")

    assert started.json == {"stat": {"queue": "test", "status": 1}}
    assert (await pop(front, "test")).json["key"] == key
    assert (await pop(front, "test")).json["value"] == "accepted while stopped"
    assert (await post(front, "/control/test", status="pause")).status_code == 400
    assert (await post(front, "/control/test")).status_code == 400


async def test_the_policy_is_broadcast_until_set_and_is_the_queues_policy(front: Api) -> None:
    unset = await front.http.simulate_get("/p/fresh", headers=BASIC)
    assert unset.json == {"queue": "fresh", "value": "broadcast"}

    changed = await post(front, "/p/fresh", policy="roundrobin")

    assert changed.json == {"queue": "fresh", "value": "roundrobin"}
    shown = await front.http.simulate_get("/p/fresh", headers=BASIC)
    assert shown.json == {"queue": "fresh", "value": "roundrobin"}
    details = await front.http.simulate_get("/v1/queuey", headers=AUTH, params={"details": "true"})
    assert [q["policy"] for q in details.json["queues"]] == ["roundrobin"]
    assert (await post(front, "/p/fresh", policy="random")).status_code == 400
    assert (await post(front, "/p/fresh")).status_code == 400


async def test_stats_list_queues_with_length_status_and_policy(front: Api) -> None:
    await add(front, "alpha", "a1")
    await add(front, "alpha", "a2")
    await post(front, "/control/beta", status="stop")
    await post(front, "/p/beta", policy="roundrobin")

    one = await front.http.simulate_get("/stats/alpha", headers=BASIC)
    every = await front.http.simulate_get("/stats/", headers=BASIC)
    statuses = await front.http.simulate_get("/control/", headers=BASIC)

    assert one.json == {"queue": "alpha", "len": 2, "status": 1, "policy": "broadcast"}
    assert every.json == {
        "queues": {
            "alpha": {"name": "alpha", "len": 2, "status": 1, "policy": "broadcast"},
            "beta": {"name": "beta", "len": 0, "status": 0, "policy": "roundrobin"},
        },
        "count": 2,
    }
    assert statuses.json == {
        "queues": {
            "alpha": {"queue": "alpha", "status": 1},
            "beta": {"queue": "beta", "status": 0},
        },
        "count": 2,
    }
    unknown = await front.http.simulate_get("/stats/gamma", headers=BASIC)
    assert unknown.json == {"queue": "gamma", "len": 0, "status": 1, "policy": "broadcast"}


async def test_stats_list_every_queue_over_several_pages(front: Api) -> None:
    limits = front.service.limits
    front.service.limits = replace(limits, max_list_limit=2, default_list_limit=2)
    for name in ("a", "b", "c", "d", "e"):
        await add(front, name, "m")

    every = await front.http.simulate_get("/stats", headers=BASIC)

    assert list(every.json["queues"]) == ["a", "b", "c", "d", "e"]
