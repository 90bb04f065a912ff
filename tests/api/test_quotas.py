"""Per-application quotas over HTTP: stored messages and bytes and queues (403 QuotaExceeded,
on every back-end), room made again by acks, expiry, deletes and purges; long polls, streams
and the post rate (429 with Retry-After), released however a long poll or stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import falcon.testing
import orjson
import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.core.clock import FakeClock
from queuey.core.quotas import Quotas, QuotaSettings, Usage
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from tests.api.conftest import AUTH, FORM, KEYS, OTHER_AUTH, Api, patient
from tests.api.test_claims import ack, claim
from tests.api.test_gone_clients import claiming
from tests.api.test_streams import _hub, stream
from tests.conftest import BACKENDS, make_storage

QuotaApi = Callable[..., Any]


@pytest.fixture(params=BACKENDS)
def quota_api(request: pytest.FixtureRequest, tmp_path: Path) -> QuotaApi:
    """``async with quota_api(**quotas) as api``: the app on the back-end, application
    ``queuey`` with those quotas (the others with none)."""

    @asynccontextmanager
    async def build(**quotas: int) -> AsyncIterator[Api]:
        clock = FakeClock()
        storage = make_storage(request.param, tmp_path)
        settings = QuotaSettings(applications={"queuey": Quotas(**quotas)})
        notifier = Notifier(storage, POLL_INTERVAL)
        service = QueueService(storage, KEYS.keys(), clock, notifier, quotas=settings)
        app = create_app(service, KeyRing(KEYS), sweep_interval=3600)
        async with falcon.testing.ASGIConductor(patient(app)) as conductor:
            yield Api(conductor, clock, service)

    return build


async def post_batch(api: Api, queue: str, bodies: list[str], **item: Any) -> Any:
    payload = {"messages": [{"body": body, **item} for body in bodies]}
    return await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=orjson.dumps(payload),
        content_type="application/json",
    )  # fmt: skip


def refused(result: Any, status: int, quota: str) -> None:
    assert result.status_code == status, result.text
    key = "QuotaExceeded" if status == 403 else "TooManyRequests"
    assert quota in result.json["error_msg"][key], result.text
    assert result.json["quota"] == quota and result.json["status"] == "error"


def _hub_open(api: Api) -> int:
    """How many streams the app's stream hub holds open."""
    return int(_hub(api).open)


async def count(api: Api, queue: str) -> int:
    return len(await api.read(queue, limit="1000"))


# --- stored messages and bytes ------------------------------------------------------------------


async def test_a_post_over_max_stored_messages_is_refused_whole(quota_api: QuotaApi) -> None:
    async with quota_api(max_stored_messages=5) as api:
        queue = await api.mkq()
        assert (await post_batch(api, queue, ["a", "b", "c"])).status_code == 201
        refused(await post_batch(api, queue, ["d", "e", "f"]), 403, "max_stored_messages")
        assert await count(api, queue) == 3  # nothing of the refused batch was stored
        assert (await post_batch(api, queue, ["d", "e"])).status_code == 201
        raw = await api.http.simulate_post(f"/v1/queuey/{queue}", headers=AUTH, body="x")
        refused(raw, 403, "max_stored_messages")
        assert await count(api, queue) == 5


async def test_a_post_over_max_stored_bytes_is_refused_whole(quota_api: QuotaApi) -> None:
    async with quota_api(max_stored_bytes=100) as api:
        queue = await api.mkq()
        assert (await post_batch(api, queue, ["é" * 20, "x" * 40])).status_code == 201  # 80 B
        refused(await post_batch(api, queue, ["y" * 15, "z" * 10]), 403, "max_stored_bytes")
        assert await count(api, queue) == 2
        assert (await post_batch(api, queue, ["y" * 20])).status_code == 201  # exactly 100
        refused(await post_batch(api, queue, ["!"]), 403, "max_stored_bytes")


async def test_a_put_by_id_is_held_to_the_stored_quotas(quota_api: QuotaApi) -> None:
    async with quota_api(max_stored_bytes=10) as api:
        queue = await api.mkq()
        posted = await api.post(queue, "12345")
        path = f"/v1/queuey/{queue}/{posted['partition']}:{posted['key']}"
        refused(
            await api.http.simulate_put(path, headers=AUTH, body="x" * 6), 403, "max_stored_bytes"
        )
        [message] = await api.read(queue)
        assert message["body"] == "12345"  # refused: nothing written
        assert (await api.http.simulate_put(path, headers=AUTH, body="x" * 5)).status_code == 200


async def test_quotas_are_per_application(quota_api: QuotaApi) -> None:
    async with quota_api(max_stored_messages=1) as api:
        queue = await api.mkq()
        await api.post(queue, "mine")
        created = await api.http.simulate_post(
            "/v1/notifications", headers=OTHER_AUTH, body="queue_name=q", content_type=FORM
        )
        assert created.status_code == 201
        for _ in range(3):
            other = await api.http.simulate_post(
                "/v1/notifications/q", headers=OTHER_AUTH, body="theirs"
            )
            assert other.status_code == 201, other.text


async def test_acks_and_deletes_make_room_at_the_next_measurement(quota_api: QuotaApi) -> None:
    async with quota_api(max_stored_messages=2) as api:
        queue = await api.mkq()
        posted = [await api.post(queue, "one"), await api.post(queue, "two")]
        refused(await post_batch(api, queue, ["three"]), 403, "max_stored_messages")
        [claimed] = await claim(api, queue, limit=1)
        await ack(api, queue, claimed["claim_id"])
        await api.service.quotas.measure()
        refused(await post_batch(api, queue, ["three", "four"]), 403, "max_stored_messages")
        [other] = [m for m in posted if m["key"] != claimed["message_id"]]
        deleted = await api.http.simulate_delete(
            f"/v1/queuey/{queue}/{other['partition']}:{other['key']}", headers=AUTH
        )
        assert deleted.status_code == 200, deleted.text
        await api.service.quotas.measure()
        assert (await post_batch(api, queue, ["three", "four"])).status_code == 201


async def test_expiry_purge_and_queue_deletion_make_room(quota_api: QuotaApi) -> None:
    async with quota_api(max_stored_messages=2) as api:
        queue = await api.mkq()
        assert (await post_batch(api, queue, ["a", "b"], ttl=60)).status_code == 201
        refused(await post_batch(api, queue, ["c"]), 403, "max_stored_messages")
        api.clock.advance(61)
        await api.service.quotas.measure()
        assert (await post_batch(api, queue, ["c", "d"])).status_code == 201
        purged = await api.http.simulate_delete(f"/v1/queuey/{queue}/messages", headers=AUTH)
        assert purged.status_code == 200, purged.text
        await api.service.quotas.measure()
        assert (await post_batch(api, queue, ["e", "f"])).status_code == 201
        deleted = await api.http.simulate_delete(f"/v1/queuey/{queue}", headers=AUTH)
        assert deleted.status_code == 200
        await api.service.quotas.measure()
        other = await api.mkq()
        assert (await post_batch(api, other, ["g", "h"])).status_code == 201


async def test_usage_counts_what_this_process_stored_since_the_measurement(
    quota_api: QuotaApi,
) -> None:
    async with quota_api(max_stored_messages=10, max_stored_bytes=1000) as api:
        queue = await api.mkq()
        assert (await post_batch(api, queue, ["ab", "cd", "ef"])).status_code == 201
        assert api.service.quotas.usage("queuey") == Usage(3, 6)
        await api.service.quotas.measure()
        assert api.service.quotas.usage("queuey") == Usage(3, 6)  # measured, not counted twice
        assert api.service.quotas.usage("notifications") is None  # no quota: never measured


# --- queues -------------------------------------------------------------------------------------


async def test_max_queues_refuses_a_new_queue_not_an_existing_one(quota_api: QuotaApi) -> None:
    async with quota_api(max_queues=2) as api:
        first = await api.mkq(queue_name="first")
        await api.mkq(queue_name="second")
        result = await api.http.simulate_post(
            "/v1/queuey", headers=AUTH, body="queue_name=third", content_type=FORM
        )
        refused(result, 403, "max_queues")
        again = await api.http.simulate_post(
            "/v1/queuey", headers=AUTH, body="queue_name=first", content_type=FORM
        )
        assert again.status_code in (200, 201), again.text  # creating an existing queue
        await api.http.simulate_delete(f"/v1/queuey/{first}", headers=AUTH)
        await api.mkq(queue_name="third")


# --- long polls, streams, post rate (per process; no storage involved: memory) --------------------


@pytest.mark.parametrize("quota_api", ["memory"], indirect=True)
async def test_max_long_polls_is_429_and_a_finished_long_poll_frees_its_place(
    quota_api: QuotaApi,
) -> None:
    async with quota_api(max_long_polls=1) as api:
        queue = await api.mkq()
        waiting = asyncio.create_task(claim(api, queue, wait=5))
        while api.service.quotas.long_polls("queuey") < 1:
            await asyncio.sleep(0.01)
        for result in (
            await api.http.simulate_post(
                f"/v1/queuey/{queue}/claims", headers=AUTH, body="wait=1", content_type=FORM
            ),
            await api.http.simulate_get(f"/v1/queuey/{queue}", params={"wait": "1"}, headers=AUTH),
        ):
            refused(result, 429, "max_long_polls")
            assert result.headers["retry-after"] == "1"
        assert (await claim(api, queue)) == []  # without wait: not a long poll
        await api.post(queue, "wakes it")
        assert len(await waiting) == 1
        assert api.service.quotas.long_polls("queuey") == 0
        assert await api.read(queue, wait="1") != []


@pytest.mark.parametrize("quota_api", ["memory"], indirect=True)
async def test_a_long_poll_whose_client_leaves_frees_its_place(quota_api: QuotaApi) -> None:
    async with quota_api(max_long_polls=1) as api:
        queue = await api.mkq()
        client = claiming(api, queue, wait="20")
        client.start()
        while api.service.quotas.long_polls("queuey") < 1:
            await asyncio.sleep(0.01)
        refused(
            await api.http.simulate_post(
                f"/v1/queuey/{queue}/claims", headers=AUTH, body="wait=1", content_type=FORM
            ),
            429,
            "max_long_polls",
        )
        client.leave()
        await client.finished()
        assert api.service.quotas.long_polls("queuey") == 0
        await api.post(queue, "for the next one")
        assert len(await claim(api, queue, wait=1)) == 1


@pytest.mark.parametrize("quota_api", ["memory"], indirect=True)
async def test_max_streams_is_429_and_an_ended_stream_frees_its_place(quota_api: QuotaApi) -> None:
    async with quota_api(max_streams=1) as api:
        queue = await api.mkq()
        async with stream(api, queue):
            result = await api.http.simulate_get(f"/v1/queuey/{queue}/stream", headers=AUTH)
            refused(result, 429, "max_streams")
            assert result.headers["retry-after"] == "1"
        # The client went away (leaving get_stream disconnects): there is room again.
        async with stream(api, queue):
            pass
        async with stream(api, queue):
            deleted = await api.http.simulate_delete(f"/v1/queuey/{queue}", headers=AUTH)
            assert deleted.status_code == 200  # ends the stream
            queue = await api.mkq()
            while _hub_open(api):
                await asyncio.sleep(0.01)
            async with stream(api, queue):
                pass


@pytest.mark.parametrize("quota_api", ["memory"], indirect=True)
async def test_post_rate_is_a_token_bucket_answering_429_with_retry_after(
    quota_api: QuotaApi,
) -> None:
    async with quota_api(post_rate=2, post_burst=4) as api:
        queue = await api.mkq()
        assert (await post_batch(api, queue, ["a", "b", "c"])).status_code == 201
        assert (await post_batch(api, queue, ["d"])).status_code == 201
        result = await post_batch(api, queue, ["e", "f", "g"])
        refused(result, 429, "post_rate")
        assert result.headers["retry-after"] == "2"  # 3 messages at 2 a second
        api.clock.advance(1)
        assert (await post_batch(api, queue, ["e", "f"])).status_code == 201
        refused(await post_batch(api, queue, ["h"]), 429, "post_rate")
        api.clock.advance(10)  # the bucket holds post_burst at most
        assert (await post_batch(api, queue, ["1", "2", "3", "4"])).status_code == 201
        refused(await post_batch(api, queue, ["5"]), 429, "post_rate")
        assert await count(api, queue) == 10


@pytest.mark.parametrize("quota_api", ["memory"], indirect=True)
async def test_a_batch_larger_than_the_bucket_goes_when_it_is_full(quota_api: QuotaApi) -> None:
    async with quota_api(post_rate=2) as api:
        queue = await api.mkq()
        assert (await post_batch(api, queue, ["a"] * 10)).status_code == 201
        result = await post_batch(api, queue, ["b"])
        refused(result, 429, "post_rate")
        assert result.headers["retry-after"] == "5"  # the debt of 8, then one more
        api.clock.advance(5)
        assert (await post_batch(api, queue, ["b"])).status_code == 201
