"""Queue maintenance (api.md Part 3) on every back-end: purge, and redrive of a dead-letter
queue, each message moved exactly once even when a redrive is repeated or interrupted."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from queuey.core.errors import StorageUnavailable
from queuey.storage.base import Storage
from tests.api.conftest import AUTH, FORM, OTHER_AUTH, Api
from tests.api.test_claims import ack, claim, extend, stats


async def purge(api: Api, queue: str, status: int = 200, **headers: str) -> Any:
    result = await api.http.simulate_delete(
        f"/v1/queuey/{queue}/messages", headers={**AUTH, **headers}
    )
    assert result.status_code == status, result.text
    return result.json


async def redrive(api: Api, queue: str, status: int = 200, **params: str) -> Any:
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}/redrive", headers=AUTH, body=urlencode(params), content_type=FORM
    )
    assert result.status_code == status, result.text
    return result.json


async def bodies(api: Api, queue: str) -> list[str]:
    return sorted(m["body"] for m in await api.read(queue))


async def dead_letter(api: Api, jobs: str, count: int) -> list[str]:
    """Post ``count`` messages to ``jobs`` (max_deliveries 1) and dead-letter them all."""
    posted = [(await api.post(jobs, f"job {i}"))["key"] for i in range(count)]
    claimed = await claim(api, jobs, limit=count)
    await extend(api, jobs, 0, *(c["claim_id"] for c in claimed))
    assert await claim(api, jobs, limit=count) == []  # exhausted: moved to the dead letters
    return posted


async def test_purge_deletes_available_claimed_and_delayed_messages(api: Api) -> None:
    queue = await api.mkq(partitions=2, claim_ttl=60)
    await api.post(queue, "one")
    await api.post(queue, "two", **{"X-Partition": "2"})
    await api.post(queue, "later", **{"X-Delay": "100"})
    claimed = await claim(api, queue)
    assert (await purge(api, queue)) == {"status": "ok", "purged": 3}
    assert await api.read(queue) == []
    assert (await stats(api, queue))["messages"] == 0
    api.clock.advance(200)
    assert await api.read(queue) == []  # the delayed one is gone too
    result = await ack(api, queue, claimed[0]["claim_id"])
    assert result.status_code == 409
    assert result.json["failed"] == [claimed[0]["claim_id"]]
    # The queue and its settings stay and take new messages.
    await api.post(queue, "after", **{"X-Partition": "1"})
    assert await bodies(api, queue) == ["after"]
    assert (await purge(api, queue))["purged"] == 1
    assert (await purge(api, queue))["purged"] == 0


async def test_purge_and_redrive_are_for_the_owner_only(api: Api) -> None:
    queue = await api.mkq(principles="app:notifications")
    await api.post(queue, "kept")
    for method, path in (("DELETE", "messages"), ("POST", "redrive")):
        for headers, status in (({}, 401), (OTHER_AUTH, 403)):
            result = await api.http.simulate_request(
                method, f"/v1/queuey/{queue}/{path}", headers=headers
            )
            assert result.status_code == status, (method, path)
    assert await bodies(api, queue) == ["kept"]
    missing = await api.http.simulate_delete("/v1/queuey/missing/messages", headers=AUTH)
    assert missing.status_code == 404


async def test_redrive_moves_dead_letters_back_with_deliveries_reset(api: Api) -> None:
    dead = await api.mkq(queue_name="jobs.dead")
    jobs = await api.mkq(queue_name="jobs", max_deliveries=1, dead_letter_queue=dead)
    posted = await dead_letter(api, jobs, 3)
    assert await bodies(api, dead) == ["job 0", "job 1", "job 2"]

    assert await redrive(api, dead, limit="2") == {"status": "ok", "moved": 2}
    assert await bodies(api, dead) == ["job 2"]
    assert await redrive(api, dead) == {"status": "ok", "moved": 1}  # to: where they came from
    assert await redrive(api, dead) == {"status": "ok", "moved": 0}
    assert await bodies(api, dead) == []
    again = await claim(api, jobs, limit=10)
    assert not {m["message_id"] for m in again} & set(posted)  # new ids: no cursor's past
    assert {m["deliveries"] for m in again} == {1}
    assert sorted(m["body"] for m in again) == ["job 0", "job 1", "job 2"]


async def test_redrive_to_another_queue(api: Api) -> None:
    dead = await api.mkq(queue_name="dead")
    await api.mkq(queue_name="jobs", max_deliveries=1, dead_letter_queue=dead)
    await api.mkq(queue_name="retry")
    await dead_letter(api, "jobs", 1)
    assert (await redrive(api, dead, to="retry"))["moved"] == 1
    assert await bodies(api, "retry") == ["job 0"]
    assert await bodies(api, "jobs") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"to": "missing"}, "to"),
        ({"to": "bad name"}, "to"),
        ({"to": "dead"}, "to"),  # itself
        ({}, "to"),  # no queue sends its dead letters here
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_redrive_parameters_are_400_naming_the_field(
    api: Api, params: dict[str, str], field: str
) -> None:
    await api.mkq(queue_name="dead")
    await api.post("dead", "stays")
    answer = await redrive(api, "dead", 400, **params)
    assert field in answer["error_msg"]
    assert await bodies(api, "dead") == ["stays"]


async def test_redrive_without_to_needs_a_single_sender(api: Api) -> None:
    await api.mkq(queue_name="dead")
    for name in ("a", "b"):
        await api.mkq(queue_name=name, max_deliveries=1, dead_letter_queue="dead")
    answer = await redrive(api, "dead", 400)
    assert "a, b" in answer["error_msg"]["to"]


async def test_redrive_without_to_finds_the_sender_without_walking_the_queues(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = await api.mkq(queue_name="dead")
    await api.mkq(queue_name="jobs", max_deliveries=1, dead_letter_queue=dead)
    for index in range(5):  # queues that send elsewhere, or nowhere
        await api.mkq(queue_name=f"other{index}", dead_letter_queue="jobs" if index else "")
    await dead_letter(api, "jobs", 1)

    async def walked(*args: object) -> None:
        raise AssertionError("the application's queues were listed")

    monkeypatch.setattr(api.service.storage, "list_queues", walked)
    monkeypatch.setattr(api.service.storage, "list_queue_names", walked)
    assert (await redrive(api, dead))["moved"] == 1
    assert await bodies(api, "jobs") == ["job 0"]


async def test_an_interrupted_redrive_moves_each_message_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = await api.mkq(queue_name="dead")
    jobs = await api.mkq(queue_name="jobs", max_deliveries=1, dead_letter_queue=dead)
    await dead_letter(api, jobs, 2)
    storage: Storage = api.service.storage
    real_delete = storage.delete_messages

    async def failing_delete(*args: Any) -> None:
        raise StorageUnavailable()

    # The messages reach the target, then the store fails before they leave the dead letters.
    monkeypatch.setattr(storage, "delete_messages", failing_delete)
    await redrive(api, dead, 503)
    assert await bodies(api, jobs) == ["job 0", "job 1"]
    # A consumer takes one of them before the redrive is repeated: it must not come back.
    [taken] = await claim(api, jobs)
    await ack(api, jobs, taken["claim_id"])
    monkeypatch.setattr(storage, "delete_messages", real_delete)
    assert (await redrive(api, dead))["moved"] == 2
    assert await bodies(api, dead) == []
    remaining = await claim(api, jobs, limit=10)
    assert [m["body"] for m in remaining] == [b for b in ("job 0", "job 1") if b != taken["body"]]
