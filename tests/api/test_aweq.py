"""The AweQ front end (api.md Part 4, reference/aweq.md), replaying AweQ's README test."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.api.conftest import AUTH, FORM, Api
from tests.api.frontends import AWEQ_QUEUE, BASIC, front

__all__ = ["front"]

LIFETIME = 5


async def send(front: Api, message: object) -> str:
    result = await front.http.simulate_post(
        "/send-message", headers=BASIC, json={"message": message}
    )
    assert result.status_code == 200, result.text
    assert result.json["status"] == "okay"
    key: str = result.json["key"]
    return key


async def receive(front: Api, count: int | None = None) -> dict[str, Any]:
    params = {} if count is None else {"count": str(count)}
    result = await front.http.simulate_get("/receive-message", headers=BASIC, params=params)
    assert result.status_code == 200, result.text
    assert result.json["status"] == "okay"
    body: dict[str, Any] = result.json
    return body


async def delete(front: Api, key: str) -> None:
    result = await front.http.simulate_delete(f"/delete-message/{key}", headers=BASIC)
    assert result.status_code == 200, result.text
    assert result.json == {"status": "okay"}


async def stats(front: Api) -> dict[str, Any]:
    result = await front.http.simulate_get("/get-stats", headers=BASIC)
    assert result.status_code == 200, result.text
    found: dict[str, Any] = result.json["stats"]
    return found


async def counts(front: Api) -> tuple[int, int]:
    found = await stats(front)
    return found["queue_length"], found["checkouts_count"]


def keys_of(reply: dict[str, Any]) -> list[str]:
    return [item["key"] for item in reply["messages"]]


async def test_the_readme_walkthrough_batches_checkouts_redelivery_and_deletes(
    front: Api,
) -> None:
    await front.mkq(queue_name=AWEQ_QUEUE, claim_ttl=LIFETIME)  # a short checkout lifetime
    sent = [await send(front, f"message {n}") for n in range(7)]
    assert await stats(front) == {
        "queue_length": 7, "checkouts_count": 0, "checkout_lifetime": f"{LIFETIME}s",
        "rescue_interval": "0s",
    }  # fmt: skip

    batches = [await receive(front, 3) for _ in range(3)]

    assert [keys_of(b) for b in batches] == [sent[0:3], sent[3:6], sent[6:7]]
    assert [b["message"] for b in batches] == [
        "Requested batch-size available.",
        "Requested batch-size available.",
        "Fewer messages available than requested.",
    ]
    first = batches[0]["messages"][0]
    assert first["message"] == "message 0" and first["retry_count"] == 0
    assert first["timestamp"] == int(front.clock.time_ns() // 1_000_000)
    assert await counts(front) == (0, 7)
    assert await receive(front) == {
        "status": "okay", "message": "No messages available in queue.", "messages": [],
    }  # fmt: skip

    for key in sent[:3]:
        await delete(front, key)
    assert await counts(front) == (0, 4)
    front.clock.advance(LIFETIME)
    again = await receive(front, 32)

    assert keys_of(again) == sent[3:]  # the deleted ones never come back
    assert [item["retry_count"] for item in again["messages"]] == [1, 1, 1, 1]
    assert again["message"] == "Fewer messages available than requested."
    for key in keys_of(again):
        await delete(front, key)
    front.clock.advance(LIFETIME)
    assert (await receive(front, 32))["messages"] == []
    assert await counts(front) == (0, 0)


async def test_a_key_is_a_dashed_uuid1_and_the_queue_is_an_ordinary_queue(front: Api) -> None:
    key = await send(front, {"task": "resize", "sizes": [1, 2]})
    listed = await front.http.simulate_get("/v1/queuey", headers=AUTH, params={"details": "true"})
    [queue] = listed.json["queues"]
    assert (queue["queue_name"], queue["claim_ttl"]) == (AWEQ_QUEUE, 120)
    assert key.count("-") == 4 and key[14] == "1"
    [stored] = await front.read(AWEQ_QUEUE)
    assert stored["message_id"] == key.replace("-", "")
    assert stored["content_type"] == "application/json"
    await front.post(AWEQ_QUEUE, "posted through v1")

    items = (await receive(front, 2))["messages"]

    assert [item["key"] for item in items[:1]] == [key]
    assert [item["message"] for item in items] == [
        {"task": "resize", "sizes": [1, 2]},
        "posted through v1",
    ]


async def test_a_message_may_come_as_a_form(front: Api) -> None:
    result = await front.http.simulate_post(
        "/send-message", headers=BASIC, body=urlencode({"message": "from a form"}),
        content_type=FORM,
    )  # fmt: skip
    assert result.status_code == 200, result.text
    [item] = (await receive(front))["messages"]
    assert (item["key"], item["message"]) == (result.json["key"], "from a form")


@pytest.mark.parametrize("body", [{}, {"message": ""}, {"message": 0}, {"message": False},
                                  {"message": None}])  # fmt: skip
async def test_a_message_without_content_is_refused_in_aweqs_words_as_json(
    front: Api, body: dict[str, Any]
) -> None:
    result = await front.http.simulate_post("/send-message", headers=BASIC, json=body)

    assert result.status_code == 400
    assert result.json["status"] == "error"
    assert result.json["message"] == "Message content required."
    assert (await stats(front))["queue_length"] == 0


@pytest.mark.parametrize("count", ["0", "-2", "three", "1.5"])
async def test_a_batch_size_that_is_not_a_positive_number_is_a_json_error(
    front: Api, count: str
) -> None:
    result = await front.http.simulate_get(
        "/receive-message", headers=BASIC, params={"count": count}
    )
    assert result.status_code == 400
    assert result.json["status"] == "error" and result.json["message"]


async def test_a_batch_is_bounded_to_the_claim_limit(front: Api) -> None:
    await front.mkq(queue_name=AWEQ_QUEUE)
    for _ in range(2):
        result = await front.http.simulate_post(
            f"/v1/queuey/{AWEQ_QUEUE}", headers=AUTH,
            json={"messages": [{"body": "m"}] * 60},
        )  # fmt: skip
        assert result.status_code == 201

    reply = await receive(front, 500)

    assert len(reply["messages"]) == 100
    assert reply["message"] == "Fewer messages available than requested."
    assert len((await receive(front, 500))["messages"]) == 20


async def test_a_delete_acknowledges_only_a_current_checkout(front: Api) -> None:
    await front.mkq(queue_name=AWEQ_QUEUE, claim_ttl=LIFETIME)
    never_received = await send(front, "waiting")
    await delete(front, never_received)  # AweQ says okay, and the message stays
    [item] = (await receive(front))["messages"]
    assert item["key"] == never_received

    front.clock.advance(LIFETIME)
    await delete(front, never_received)  # too late: its lease ended
    [again] = (await receive(front))["messages"]
    assert (again["key"], again["retry_count"]) == (never_received, 1)
    await delete(front, again["key"])
    front.clock.advance(LIFETIME)
    assert (await receive(front))["messages"] == []
    await delete(front, "0c1f9a30-3c77-11e8-8aba-b76f21b15267")  # unknown: okay too


@pytest.mark.parametrize("key", ["not-a-key", "29bac1803c7711e88abab76f21b15267x"])
async def test_a_malformed_key_is_a_json_error(front: Api, key: str) -> None:
    result = await front.http.simulate_delete(f"/delete-message/{key}", headers=BASIC)
    assert result.status_code == 400
    assert result.json["status"] == "error" and "key" in result.json["error_msg"]


async def test_answers_carry_no_wildcard_cors_header(front: Api) -> None:
    result = await front.http.simulate_get(
        "/get-stats", headers={**BASIC, "Origin": "http://192.168.251.88:8080"}
    )
    assert result.status_code == 200
    assert "access-control-allow-origin" not in result.headers
