"""One read returns at most ``max_read_messages`` messages and ``max_read_bytes`` bytes of
bodies over all its partitions, and says where to go on ("more"), on every back-end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.core.clock import FakeClock
from queuey.core.limits import Limits
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from tests.api.conftest import AUTH, KEYS, Api, patient
from tests.conftest import BACKENDS, make_storage


@pytest.fixture(params=BACKENDS)
async def bounded(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    clock = FakeClock()
    storage = make_storage(request.param, tmp_path)
    limits = Limits(max_read_messages=5, max_read_bytes=250)
    service = QueueService(storage, KEYS.keys(), clock, Notifier(storage, POLL_INTERVAL), limits)
    app = patient(create_app(service, KeyRing(KEYS), sweep_interval=3600))
    async with falcon.testing.ASGIConductor(app) as conductor:
        yield Api(conductor, clock, service)


async def fill(api: Api, partitions: int, each: int, size: int = 10) -> str:
    queue = await api.mkq(partitions=partitions)
    items = [
        {"body": f"{p}-{i}".ljust(size, "."), "partition": p}
        for i in range(each)
        for p in range(1, partitions + 1)
    ]
    posted = await api.http.simulate_post(f"/v1/queuey/{queue}", headers=AUTH,
                                          json={"messages": items})  # fmt: skip
    assert posted.status_code == 201, posted.text
    return queue


async def read(api: Api, queue: str, **params: str) -> dict[str, Any]:
    result = await api.http.simulate_get(f"/v1/queuey/{queue}", params=params, headers=AUTH)
    assert result.status_code == 200, result.text
    answer: dict[str, Any] = result.json
    return answer


def bodies(answer: dict[str, Any]) -> list[str]:
    return [m["body"].rstrip(".") for m in answer["messages"]]


async def test_a_read_stops_at_the_message_bound_and_says_where_to_go_on(bounded: Api) -> None:
    queue = await fill(bounded, 3, 4)

    first = await read(bounded, queue, partitions="1,2,3", limit="4")
    assert bodies(first) == ["1-0", "1-1", "1-2", "1-3", "2-0"]
    assert first["more"] == {"partition": 2, "after": first["messages"][-1]["message_id"]}

    rest_of_2 = await read(bounded, queue, partitions="2", limit="4", after=first["more"]["after"])
    assert bodies(rest_of_2) == ["2-1", "2-2", "2-3"]
    assert "more" not in rest_of_2
    assert bodies(await read(bounded, queue, partitions="3", limit="4")) == [
        "3-0", "3-1", "3-2", "3-3",
    ]  # fmt: skip


async def test_a_read_cut_at_a_partition_boundary_goes_on_from_the_cursor(bounded: Api) -> None:
    queue = await fill(bounded, 3, 5)

    first = await read(bounded, queue, partitions="2,3", limit="5")
    assert bodies(first) == ["2-0", "2-1", "2-2", "2-3", "2-4"]
    assert first["more"] == {"partition": 3}


async def test_a_read_stops_at_the_byte_bound(bounded: Api) -> None:
    queue = await fill(bounded, 1, 4, size=100)

    first = await read(bounded, queue)
    assert bodies(first) == ["1-0", "1-1"]  # a third would make 300 bytes
    assert first["more"] == {"partition": 1, "after": first["messages"][-1]["message_id"]}


async def test_a_read_within_the_bounds_is_whole(bounded: Api) -> None:
    queue = await fill(bounded, 2, 2)

    answer = await read(bounded, queue, partitions="1,2")
    assert bodies(answer) == ["1-0", "1-1", "2-0", "2-1"]
    assert "more" not in answer
