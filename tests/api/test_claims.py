"""Work-queue consumption over HTTP (api.md Part 2): queue settings, delayed and idempotent
publish, claims, acks, extensions, dead letters, stats and long polling, on every back-end."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from queuey.core.ids import ticks_from_timestamp
from tests.api.conftest import AUTH, FORM, OTHER_AUTH, THIRD_AUTH, Api


async def claim(api: Api, queue: str, status: int = 200, **params: Any) -> list[dict[str, Any]]:
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}/claims", headers=AUTH, body=urlencode(params), content_type=FORM
    )
    assert result.status_code == status, result.text
    found: list[dict[str, Any]] = result.json.get("messages", [])
    return found


async def ack(api: Api, queue: str, *claim_ids: str) -> Any:
    return await api.http.simulate_delete(
        f"/v1/queuey/{queue}/claims/{','.join(claim_ids)}", headers=AUTH
    )


async def extend(api: Api, queue: str, ttl: int, *claim_ids: str) -> Any:
    return await api.http.simulate_patch(
        f"/v1/queuey/{queue}/claims/{','.join(claim_ids)}", headers=AUTH, params={"ttl": ttl}
    )


async def stats(api: Api, queue: str) -> dict[str, Any]:
    result = await api.http.simulate_get(f"/v1/queuey/{queue}/stats", headers=AUTH)
    assert result.status_code == 200, result.text
    found: dict[str, Any] = result.json["stats"]
    return found


async def post_batch(api: Api, queue: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, json={"messages": items}
    )
    assert result.status_code == 201, result.text
    posted: list[dict[str, Any]] = result.json["messages"]
    return posted


# --- settings -----------------------------------------------------------------------------------


async def test_work_queue_settings_are_set_on_create_changed_on_update_and_listed(
    api: Api,
) -> None:
    await api.mkq(queue_name="dead")
    result = await api.http.simulate_post(
        "/v1/queuey",
        headers=AUTH,
        json={
            "queue_name": "jobs", "delivery": "exactly_once", "claim_ttl": 60,
            "max_deliveries": 5, "dead_letter_queue": "dead", "delay": 2,
            "dedup_window": 600, "policy": "roundrobin", "paused": True,
        },
    )  # fmt: skip
    assert result.status_code == 201, result.text
    expected = {
        "delivery": "exactly_once", "claim_ttl": 60, "max_deliveries": 5,
        "dead_letter_queue": "dead", "delay": 2, "dedup_window": 600, "policy": "roundrobin",
        "paused": True,
    }  # fmt: skip
    assert {k: result.json[k] for k in expected} == expected

    updated = await api.http.simulate_put(
        "/v1/queuey/jobs", headers=AUTH, body="paused=false&dead_letter_queue=", content_type=FORM
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json["paused"], updated.json["dead_letter_queue"]) == (False, None)
    assert updated.json["claim_ttl"] == 60  # unchanged: not sent

    listed = await api.http.simulate_get("/v1/queuey", headers=AUTH, params={"details": "true"})
    jobs = next(q for q in listed.json["queues"] if q["queue_name"] == "jobs")
    assert (jobs["delivery"], jobs["max_deliveries"], jobs["paused"]) == ("exactly_once", 5, False)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"delivery": "twice"}, "delivery"),
        ({"claim_ttl": "0"}, "claim_ttl"),
        ({"claim_ttl": "43201"}, "claim_ttl"),
        ({"max_deliveries": "1001"}, "max_deliveries"),
        ({"delay": "-1"}, "delay"),
        ({"dedup_window": "86401"}, "dedup_window"),
        ({"policy": "random"}, "policy"),
        ({"paused": "maybe"}, "paused"),
        ({"dead_letter_queue": "no such queue"}, "dead_letter_queue"),
        ({"dead_letter_queue": "missing"}, "dead_letter_queue"),
        ({"queue_name": "self", "dead_letter_queue": "self"}, "dead_letter_queue"),
    ],
)
async def test_invalid_work_queue_settings_are_400_naming_the_field(
    api: Api, params: dict[str, str], key: str
) -> None:
    result = await api.http.simulate_post(
        "/v1/queuey", headers=AUTH, body=urlencode(params), content_type=FORM
    )
    assert result.status_code == 400, result.text
    assert key in result.json["error_msg"]
    listed = await api.http.simulate_get("/v1/queuey", headers=AUTH)
    assert listed.json["queues"] == []


# --- the claim cycle ----------------------------------------------------------------------------


async def test_claims_lease_disjoint_batches_redeliver_after_the_lease_and_ack(api: Api) -> None:
    queue = await api.mkq(claim_ttl=30)
    posted = await post_batch(api, queue, [{"body": f"job {i}"} for i in range(7)])

    batches = [await claim(api, queue, limit=3) for _ in range(3)]
    assert [len(b) for b in batches] == [3, 3, 1]
    everything = [m["message_id"] for b in batches for m in b]
    assert everything == [p["key"] for p in posted]
    first = batches[0][0]
    assert first["body"] == "job 0" and first["deliveries"] == 1
    assert first["partition"] == 1 and first["content_type"] == "text/plain"
    assert first["timestamp"] == posted[0]["timestamp"]
    assert float(first["claim_expires"]) == pytest.approx(api.clock.time_ns() / 1e9 + 30)
    assert await claim(api, queue, limit=3) == []
    counts = await stats(api, queue)
    assert (counts["messages"], counts["available"], counts["claimed"]) == (7, 0, 7)

    api.clock.advance(30)
    assert (await stats(api, queue))["available"] == 7
    again = await claim(api, queue, limit=10)
    assert [m["deliveries"] for m in again] == [2] * 7
    done = await ack(api, queue, again[0]["claim_id"])
    assert done.status_code == 200, done.text
    assert done.json == {"status": "ok", "acked": [again[0]["claim_id"]]}
    assert (await stats(api, queue))["messages"] == 6

    api.clock.advance(30)
    assert again[0]["message_id"] not in [
        m["message_id"] for m in await claim(api, queue, limit=10)
    ]


async def test_an_ack_with_a_claim_that_is_not_current_is_409_and_acks_the_rest(api: Api) -> None:
    queue = await api.mkq(claim_ttl=10)
    await post_batch(api, queue, [{"body": "a"}, {"body": "b"}])
    [old] = await claim(api, queue)
    api.clock.advance(10)
    current = await claim(api, queue, limit=2)
    ids = [old["claim_id"], *(m["claim_id"] for m in current)]

    result = await ack(api, queue, *ids)

    assert result.status_code == 409
    assert "ClaimExpired" in result.json["error_msg"]
    assert result.json["acked"] == ids[1:] and result.json["failed"] == [ids[0]]
    assert await api.read(queue) == []


async def test_claims_can_be_extended_and_released(api: Api) -> None:
    queue = await api.mkq(claim_ttl=10)
    await api.post(queue, "hello")
    [held] = await claim(api, queue)

    api.clock.advance(5)
    result = await extend(api, queue, 60, held["claim_id"])
    assert result.status_code == 200, result.text
    assert result.json["extended"] == [held["claim_id"]]
    assert float(result.json["claim_expires"]) == pytest.approx(api.clock.time_ns() / 1e9 + 60)
    api.clock.advance(30)
    assert await claim(api, queue) == []

    released = await extend(api, queue, 0, held["claim_id"])
    assert released.status_code == 200
    assert released.json == {"status": "ok", "released": [held["claim_id"]]}
    [again] = await claim(api, queue)
    assert again["deliveries"] == 2
    expired = await extend(api, queue, 60, held["claim_id"])
    assert expired.status_code == 409
    assert expired.json["failed"] == [held["claim_id"]] and expired.json["extended"] == []


@pytest.mark.parametrize(
    ("path", "params", "key"),
    [
        ("claims", {"limit": "0"}, "limit"),
        ("claims", {"limit": "101"}, "limit"),
        ("claims", {"ttl": "0"}, "ttl"),
        ("claims", {"ttl": "43201"}, "ttl"),
        ("claims", {"wait": "21"}, "wait"),
        ("claims", {"partitions": "x"}, "partitions"),
    ],
)
async def test_invalid_claim_parameters_are_400(
    api: Api, path: str, params: dict[str, str], key: str
) -> None:
    queue = await api.mkq()
    result = await api.http.simulate_post(f"/v1/queuey/{queue}/{path}", headers=AUTH, params=params)
    assert result.status_code == 400, result.text
    assert key in result.json["error_msg"]


async def test_malformed_claim_ids_and_a_missing_ttl_are_400(api: Api) -> None:
    queue = await api.mkq()
    for bad in ("nope", "0" * 50, "ab" * 30):
        result = await ack(api, queue, bad)
        assert result.status_code == 400, (bad, result.text)
        assert "claim_ids" in result.json["error_msg"]
    await api.post(queue, "x")
    [held] = await claim(api, queue)
    result = await api.http.simulate_patch(
        f"/v1/queuey/{queue}/claims/{held['claim_id']}", headers=AUTH
    )
    assert result.status_code == 400 and result.json["error_msg"] == {"ttl": "Required"}


async def test_at_most_once_claims_remove_the_message_and_need_no_ack(api: Api) -> None:
    queue = await api.mkq(delivery="at_most_once", claim_ttl=5)
    await api.post(queue, "once")

    [held] = await claim(api, queue)
    assert await api.read(queue) == []
    api.clock.advance(60)
    assert await claim(api, queue) == []
    result = await ack(api, queue, held["claim_id"])
    assert result.status_code == 200 and result.json["acked"] == [held["claim_id"]]


async def test_exactly_once_acks_are_fenced_by_the_lease(api: Api) -> None:
    queue = await api.mkq(delivery="exactly_once", claim_ttl=5)
    await api.post(queue, "pay 10")
    [held] = await claim(api, queue)
    api.clock.advance(5)

    late = await ack(api, queue, held["claim_id"])

    assert late.status_code == 409  # the consumer learns that it may be delivered again
    [again] = await claim(api, queue)
    assert (await ack(api, queue, again["claim_id"])).status_code == 200
    api.clock.advance(60)
    assert await claim(api, queue) == []


async def test_a_paused_queue_serves_reads_but_no_claims(api: Api) -> None:
    queue = await api.mkq(paused="true")
    await api.post(queue, "waiting")

    assert len(await api.read(queue)) == 1
    assert await claim(api, queue) == []
    resumed = await api.http.simulate_put(
        f"/v1/queuey/{queue}", headers=AUTH, body="paused=false", content_type=FORM
    )
    assert resumed.status_code == 200
    assert len(await claim(api, queue)) == 1


async def test_claims_can_be_limited_to_partitions(api: Api) -> None:
    queue = await api.mkq(partitions=3)
    await post_batch(api, queue, [{"body": str(p), "partition": p} for p in (1, 2, 3)])

    found = await claim(api, queue, limit=10, partitions="2,3")

    assert sorted(m["partition"] for m in found) == [2, 3]
    assert [m["partition"] for m in await claim(api, queue, limit=10)] == [1]


# --- dead letters -------------------------------------------------------------------------------


async def test_exhausted_messages_go_to_the_dead_letter_queue_once_and_can_be_claimed_there(
    api: Api,
) -> None:
    await api.mkq(queue_name="dead")
    queue = await api.mkq(claim_ttl=10, max_deliveries=2, dead_letter_queue="dead")
    posted = await api.post(queue, "poison", **{"X-TTL": "3600"})
    for _ in range(2):
        assert len(await claim(api, queue)) == 1
        api.clock.advance(10)

    assert await claim(api, queue) == []

    [moved] = await api.read("dead")
    assert (moved["message_id"], moved["body"]) == (posted["key"], "poison")
    [there] = await claim(api, "dead")
    assert there["deliveries"] == 3
    counts = await stats(api, queue)
    assert (counts["dead_lettered"], counts["messages"]) == (1, 0)
    api.clock.advance(3600)
    assert await api.read("dead") == []  # the TTL it had is kept


# --- delayed and idempotent publish -------------------------------------------------------------


async def test_a_delayed_message_is_invisible_until_due_and_carries_the_due_time(
    api: Api,
) -> None:
    queue = await api.mkq()
    start = api.clock.time_ns() / 1e9
    posted = await api.post(queue, "later", **{"X-Delay": "30"})
    assert float(posted["timestamp"]) == pytest.approx(start + 30, abs=0.01)

    assert await api.read(queue) == []
    by_id = await api.http.simulate_get(f"/v1/queuey/{queue}/{posted['key']}", headers=AUTH)
    assert by_id.json["messages"] == []
    assert await claim(api, queue) == []
    assert (await stats(api, queue))["delayed"] == 1

    api.clock.advance(30)
    assert [m["body"] for m in await api.read(queue)] == ["later"]
    assert [m["message_id"] for m in await claim(api, queue)] == [posted["key"]]


async def test_batch_items_and_the_queue_default_delay_messages(api: Api) -> None:
    queue = await api.mkq(delay=10)
    posted = await post_batch(api, queue, [{"body": "default"}, {"body": "now", "delay": 0}])

    assert [m["body"] for m in await api.read(queue)] == ["now"]
    api.clock.advance(10)
    assert sorted(m["body"] for m in await api.read(queue)) == ["default", "now"]
    ticks = [ticks_from_timestamp(p["timestamp"]) for p in posted]
    assert ticks[0] is not None and ticks[1] is not None and ticks[0] > ticks[1]


async def test_an_invalid_delay_is_400(api: Api) -> None:
    queue = await api.mkq()
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers={**AUTH, "X-Delay": "soon"}, body="x", content_type=FORM
    )
    assert result.status_code == 400 and result.json["error_msg"] == {
        "delay": '"soon" is not a number'
    }
    batch = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, json={"messages": [{"body": "x", "delay": -1}]}
    )
    assert batch.status_code == 400 and "0.delay" in batch.json["error_msg"]


async def test_a_repeated_dedup_id_stores_nothing_and_answers_with_the_first_message(
    api: Api,
) -> None:
    queue = await api.mkq(dedup_window=60)
    first = await api.post(queue, "charge", **{"X-Dedup-Id": "order-1"})
    again = await api.post(queue, "charge again", **{"X-Dedup-Id": "order-1"})

    assert again == {**first, "duplicate": True}
    batch = await post_batch(
        api, queue, [{"body": "b", "dedup_id": "order-1"}, {"body": "c", "dedup_id": "order-2"}]
    )
    assert batch[0] == {**first, "duplicate": True}
    assert "duplicate" not in batch[1]
    assert [m["body"] for m in await api.read(queue)] == ["charge", "c"]

    api.clock.advance(60)
    later = await api.post(queue, "charge later", **{"X-Dedup-Id": "order-1"})
    assert "duplicate" not in later and later["key"] != first["key"]


async def test_a_dedup_window_of_zero_turns_deduplication_off(api: Api) -> None:
    queue = await api.mkq(dedup_window=0)
    await api.post(queue, "one", **{"X-Dedup-Id": "same"})
    await api.post(queue, "two", **{"X-Dedup-Id": "same"})
    assert len(await api.read(queue)) == 2


# --- rights -------------------------------------------------------------------------------------


async def test_principals_claim_ack_and_see_stats_outsiders_do_not(api: Api) -> None:
    queue = await api.mkq(principles="app:notifications", type="public")
    await api.post(queue, "shared")
    base = f"/v1/queuey/{queue}"

    held = await api.http.simulate_post(f"{base}/claims", headers=OTHER_AUTH)
    assert held.status_code == 200 and len(held.json["messages"]) == 1
    claim_id = held.json["messages"][0]["claim_id"]
    assert (await api.http.simulate_get(f"{base}/stats", headers=OTHER_AUTH)).status_code == 200
    # A public queue is readable by anyone, but claiming needs a right on it.
    assert (await api.http.simulate_post(f"{base}/claims", headers=THIRD_AUTH)).status_code == 403
    assert (await api.http.simulate_post(f"{base}/claims")).status_code == 401
    assert (await api.http.simulate_get(f"{base}/stats")).status_code == 401
    assert (await api.http.simulate_delete(f"{base}/claims/{claim_id}")).status_code == 401
    assert (
        await api.http.simulate_delete(f"{base}/claims/{claim_id}", headers=THIRD_AUTH)
    ).status_code == 403
    done = await api.http.simulate_delete(f"{base}/claims/{claim_id}", headers=OTHER_AUTH)
    assert done.status_code == 200


async def test_unknown_queues_and_wrong_methods_on_claims(api: Api) -> None:
    assert (await api.http.simulate_post("/v1/queuey/nope/claims", headers=AUTH)).status_code == 404
    assert (await api.http.simulate_get("/v1/queuey/nope/stats", headers=AUTH)).status_code == 404
    queue = await api.mkq()
    wrong = await api.http.simulate_get(f"/v1/queuey/{queue}/claims", headers=AUTH)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST, OPTIONS"


# --- long polling -------------------------------------------------------------------------------


async def test_a_waiting_claim_answers_when_a_message_is_posted(api: Api) -> None:
    queue = await api.mkq()

    async def post_soon() -> None:
        await asyncio.sleep(0.2)
        await api.post(queue, "arrived")

    started = time.monotonic()
    poster = asyncio.create_task(post_soon())
    found = await claim(api, queue, wait=5)
    await poster

    assert [m["body"] for m in found] == ["arrived"]
    assert time.monotonic() - started < 1.5


async def test_a_waiting_read_answers_when_a_message_is_posted_and_gives_up_at_the_end(
    api: Api,
) -> None:
    queue = await api.mkq()

    async def post_soon() -> None:
        await asyncio.sleep(0.2)
        await api.post(queue, "news")

    poster = asyncio.create_task(post_soon())
    assert [m["body"] for m in await api.read(queue, wait="5")] == ["news"]
    await poster

    started = time.monotonic()
    assert await api.read(queue, after=(await api.read(queue))[0]["message_id"], wait="1") == []
    assert 0.9 < time.monotonic() - started < 3


async def test_a_waiting_claim_answers_when_a_lease_ends(api: Api) -> None:
    queue = await api.mkq(claim_ttl=1)
    await api.post(queue, "retry me")
    await claim(api, queue)

    async def time_passes() -> None:
        await asyncio.sleep(0.3)
        api.clock.advance(1)  # the fake clock: the lease ends; the waiter wakes on its own

    mover = asyncio.create_task(time_passes())
    started = time.monotonic()
    found = await claim(api, queue, wait=5)
    await mover

    assert [m["deliveries"] for m in found] == [2]
    assert time.monotonic() - started < 3


async def test_nothing_polls_the_store_once_no_request_waits(api: Api) -> None:
    queue = await api.mkq()
    notifier = api.service.notifier
    waiting = asyncio.create_task(api.read(queue, wait="5"))
    await asyncio.sleep(0.2)
    assert notifier.waiting == 1
    assert (notifier._poller is not None) == api.service.storage.shared

    await api.post(queue, "done")
    await waiting
    await asyncio.sleep(0.2)  # the poller notices within one interval that nobody waits

    assert notifier.waiting == 0 and notifier._poller is None
