"""``AsyncClient`` against a real server: each method, through the calls it shares with
``Client``."""

from __future__ import annotations

import asyncio

import pytest

from queuey.client import AsyncClient, ClaimExpired, NewMessage, NotFound
from tests.e2e.conftest import KEY

pytestmark = pytest.mark.e2e


async def test_every_method_works_awaited(url: str, queue: str) -> None:
    async with AsyncClient(url, KEY) as client:
        created = await client.create_queue(queue, partitions=2)
        assert created.settings is not None and created.settings.partitions == 2
        assert (await client.update_queue(queue, claim_ttl=90)).settings is not None
        assert queue in [q.name for q in await client.list_queues(offset=queue, limit=1)]
        posted = await client.post(queue, "one", partition=1)
        batch = await client.post_batch(queue, [NewMessage("two", partition=1), "three"])
        assert len(batch) == 2
        assert [m.body for m in await client.read(queue, limit=2)] == ["one", "two"]
        assert [m.body for m in await client.get_messages(queue, [posted])] == ["one"]
        await client.put_messages(queue, [posted], "ONE")
        assert [m.body for m in await client.get_messages(queue, [posted.ref])] == ["ONE"]
        await client.delete_messages(queue, [posted])
        claimed = await client.claim(queue, limit=1, partitions=[1])
        assert [m.body for m in claimed] == ["two"]
        assert (await client.extend(queue, claimed, 5)).extended == (claimed[0].claim_id,)
        assert (await client.release(queue, claimed)).extended == (claimed[0].claim_id,)
        claimed = await client.claim(queue, limit=1, partitions=[1])
        assert await client.ack(queue, claimed) == [claimed[0].claim_id]
        with pytest.raises(ClaimExpired):
            await client.ack(queue, claimed)
        assert (await client.stats(queue)).messages == 1
        assert await client.heartbeat() is True
        assert (await client.version())["api"] == "v1"
        await client.delete_queue(queue)
        with pytest.raises(NotFound):
            await client.read(queue)


async def test_concurrent_long_polls_share_one_client(url: str, queue: str) -> None:
    async with AsyncClient(url, KEY) as client:
        await client.create_queue(queue)
        waiting = [asyncio.create_task(client.read(queue, wait=10)) for _ in range(3)]
        await asyncio.sleep(0.3)
        await client.post(queue, "for all")
        answers = await asyncio.gather(*waiting)
    assert [[m.body for m in found] for found in answers] == [["for all"]] * 3
