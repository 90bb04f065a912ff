"""Long polls whose client goes away, through the ASGI app on every back-end: a claim takes
nothing for a client that is gone, what was claimed for an answer that did not reach its client
goes back as it was, and a read stops waiting."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from tests.api.conftest import FORM, KEY, KEYS, Api
from tests.api.test_claims import claim, stats

Event = dict[str, Any]


class Client:
    """A raw ASGI client: sends its request, then stays connected until :meth:`leave`."""

    def __init__(self, api: Api, method: str, path: str, body: bytes = b"", query: str = ""):
        self.app = create_app(api.service, KeyRing(KEYS))
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "", "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 5000),
            "headers": [
                (b"host", b"localhost"), (b"authorization", f"Application {KEY}".encode()),
                (b"content-type", FORM.encode()), (b"content-length", b"%d" % len(body)),
            ],
        }  # fmt: skip
        self.body = body
        self.sent: list[Event] = []
        self._left = asyncio.Event()
        self._requested = False
        self.task: asyncio.Task[None] | None = None

    def start(self, fail_sending: bool = False) -> None:
        self.fail_sending = fail_sending
        self.task = asyncio.get_running_loop().create_task(
            self.app(self.scope, self._receive, self._send)
        )

    def leave(self) -> None:
        self._left.set()

    async def _receive(self) -> Event:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, event: Event) -> None:
        if self.fail_sending and event["type"] == "http.response.body":
            raise OSError("connection reset by peer")
        self.sent.append(event)

    async def finished(self) -> None:
        assert self.task is not None
        await asyncio.wait_for(asyncio.shield(self.task), 5)


async def until_waiting(api: Api, count: int) -> None:
    """Return once ``count`` requests wait (within 5 s)."""
    for _ in range(500):
        if api.service.notifier.waiting == count:
            return
        await asyncio.sleep(0.01)
    assert api.service.notifier.waiting == count


def claiming(api: Api, queue: str, **params: str) -> Client:
    body = urlencode(params).encode()
    return Client(api, "POST", f"/v1/queuey/{queue}/claims", body)


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once"])
async def test_a_waiting_claim_whose_client_left_takes_nothing(api: Api, delivery: str) -> None:
    queue = await api.mkq(delivery=delivery, max_deliveries=1)
    gone = claiming(api, queue, wait="20")
    gone.start()
    await until_waiting(api, 1)

    gone.leave()
    await until_waiting(api, 0)  # the wait ended with its client
    await api.post(queue, "important")
    await gone.finished()

    [found] = await claim(api, queue)
    assert (found["body"], found["deliveries"]) == ("important", 1)


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once"])
async def test_a_claim_whose_answer_could_not_be_sent_gives_its_messages_back(
    api: Api, delivery: str
) -> None:
    queue = await api.mkq(delivery=delivery, max_deliveries=1)
    await api.post(queue, "important")
    lost = claiming(api, queue, limit="5")
    lost.start(fail_sending=True)
    with pytest.raises(OSError):
        await lost.finished()

    counts = await stats(api, queue)
    assert (counts["available"], counts["claimed"], counts["dead_lettered"]) == (1, 0, 0)
    [found] = await claim(api, queue)
    assert (found["body"], found["deliveries"]) == ("important", 1)


async def test_a_claim_answered_after_its_client_left_gives_its_messages_back(api: Api) -> None:
    queue = await api.mkq(max_deliveries=1)
    gone = claiming(api, queue, wait="20")
    gone.start()
    await until_waiting(api, 1)
    # The post wakes the claim and the client leaves at once: the claim finds the message in
    # the same instant it learns its client is gone.
    await api.post(queue, "important")
    gone.leave()
    await gone.finished()

    [found] = await claim(api, queue)
    assert (found["body"], found["deliveries"]) == ("important", 1)


async def test_a_waiting_read_whose_client_left_stops_waiting(api: Api) -> None:
    queue = await api.mkq()
    gone = Client(api, "GET", f"/v1/queuey/{queue}", query="wait=20")
    gone.start()
    await until_waiting(api, 1)

    gone.leave()
    await gone.finished()  # within 5 s, not 20
    assert api.service.notifier.waiting == 0
