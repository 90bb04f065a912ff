"""Streams (api.md "Streams (push)") over HTTP on every back-end: server-sent events, NDJSON
and WebSocket framing, broadcast resume, round-robin credit and redelivery, pause, delete,
rights and bad parameters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest
from falcon.errors import WebSocketDisconnected
from falcon.testing import ASGIWebSocketSimulator, StreamedResult

from queuey.core.ids import ticks_from_ns, ticks_of, uuid1_hex
from queuey.core.models import Message
from tests.api.conftest import AUTH, FORM, OTHER_AUTH, THIRD_AUTH, Api
from tests.conftest import SHARED_BACKENDS

TIMEOUT = 10.0


class Events:
    """A streamed response read as it comes: SSE events, or NDJSON lines."""

    def __init__(self, result: StreamedResult) -> None:
        self.result = result
        self.buffer = b""

    async def _fill(self, ready: Any) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not ready():
            data = await self.result.stream.read()
            if data:
                self.buffer += data
                continue
            assert time.monotonic() < deadline, f"timed out; got {self.buffer!r}"
            await asyncio.sleep(0.005)

    async def blocks(self, count: int) -> list[dict[str, str]]:
        """The next ``count`` SSE blocks, as {field: value} (comments under ``:``)."""
        await self._fill(lambda: self.buffer.count(b"\n\n") >= count)
        found = []
        for _ in range(count):
            block, _, self.buffer = self.buffer.partition(b"\n\n")
            fields: dict[str, str] = {}
            for line in block.decode().split("\n"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            found.append(fields)
        return found

    async def messages(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` SSE message events' data (heartbeats skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            for block in await self.blocks(1):
                if block.get("event") == "message":
                    data = orjson.loads(block["data"])
                    assert block["id"] == data["message_id"]
                    found.append(data)
        return found

    async def lines(self, count: int) -> list[bytes]:
        """The next ``count`` NDJSON lines (empty lines are heartbeats)."""
        await self._fill(lambda: self.buffer.count(b"\n") >= count)
        found = []
        for _ in range(count):
            line, _, self.buffer = self.buffer.partition(b"\n")
            found.append(line)
        return found

    async def quiet(self, seconds: float = 0.3) -> bytes:
        """What arrives within ``seconds`` (nothing, when nothing is due)."""
        await asyncio.sleep(seconds)
        self.buffer += await self.result.stream.read()
        data, self.buffer = self.buffer, b""
        return data

    async def ended(self) -> None:
        """Wait for the response to end (the simulated request's task finishing)."""
        task: asyncio.Task[None] = self.result._task
        deadline = time.monotonic() + TIMEOUT
        while not task.done():
            assert time.monotonic() < deadline, "the stream did not end"
            self.buffer += await self.result.stream.read()
            await asyncio.sleep(0.01)
        self.buffer += await self.result.stream.read()


@asynccontextmanager
async def stream(
    api: Api, queue: str, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[Events]:
    path = f"/v1/queuey/{queue}/stream"
    if params:
        path += "?" + urlencode(params)
    async with api.http.get_stream(path, headers=AUTH if headers is None else headers) as result:
        assert result.status_code == 200
        events = Events(result)
        if result.headers["content-type"] == "text/event-stream":
            (opening,) = await events.blocks(1)
            assert "retry" in opening
        yield events


@asynccontextmanager
async def socket(
    api: Api, queue: str, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[ASGIWebSocketSimulator]:
    async with api.http.simulate_ws(
        f"/v1/queuey/{queue}/stream",
        query_string=urlencode(params),
        headers=AUTH if headers is None else headers,
    ) as ws:
        yield ws


async def frame(ws: ASGIWebSocketSimulator) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.receive_text(), TIMEOUT))
    return found


async def refused(api: Api, queue: str, status: int, error: str, **params: Any) -> None:
    headers = params.pop("headers", AUTH)
    result = await api.http.simulate_get(
        f"/v1/queuey/{queue}/stream", params=params, headers=headers
    )
    assert result.status_code == status, result.text
    assert error in result.json["error_msg"], result.text


async def post_many(api: Api, queue: str, bodies: list[str], **item: Any) -> list[str]:
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}",
        headers=AUTH,
        json={"messages": [{"body": body, **item} for body in bodies]},
    )
    assert result.status_code == 201, result.text
    return [m["key"] for m in result.json["messages"]]


async def ack(api: Api, queue: str, *claim_ids: str) -> None:
    result = await api.http.simulate_delete(
        f"/v1/queuey/{queue}/claims/{','.join(claim_ids)}", headers=AUTH
    )
    assert result.status_code == 200, result.text


# --- framing ------------------------------------------------------------------------------------


async def test_sse_sends_a_retry_hint_then_each_new_message_as_an_event(api: Api) -> None:
    queue = await api.mkq(partitions=2)
    await api.post(queue, "before")
    async with stream(api, queue) as events:
        assert events.result.headers["cache-control"] == "no-cache"
        posted = await api.post(queue, "hello", **{"X-Partition": "2"})
        (event,) = await events.blocks(1)
        assert event["id"] == posted["key"] and event["event"] == "message"
        assert orjson.loads(event["data"]) == {
            "message_id": posted["key"], "timestamp": posted["timestamp"], "body": "hello",
            "partition": 2, "content_type": FORM,
        }  # fmt: skip


async def test_sse_heartbeat_is_a_comment_every_stream_heartbeat_seconds(api: Api) -> None:
    api.service.limits = replace(api.service.limits, stream_heartbeat=1)
    queue = await api.mkq()
    async with stream(api, queue) as events:
        start = time.monotonic()
        beats = []
        for _ in range(2):
            (beat,) = await events.blocks(1)
            beats.append(time.monotonic() - start)
            assert list(beat) == [""]
        assert 0.6 < beats[0] < 2 and 0.6 < beats[1] - beats[0] < 2


async def test_ndjson_by_accept_or_format_one_object_per_line_empty_heartbeat(api: Api) -> None:
    api.service.limits = replace(api.service.limits, stream_heartbeat=1)
    queue = await api.mkq()
    headers = {**AUTH, "Accept": "application/x-ndjson"}
    async with (
        stream(api, queue, headers) as by_accept,
        stream(api, queue, format="ndjson") as by_format,
    ):
        for events in (by_accept, by_format):
            assert events.result.headers["content-type"] == "application/x-ndjson"
        posted = await api.post(queue, "line")
        for events in (by_accept, by_format):
            (line,) = await events.lines(1)
            assert orjson.loads(line)["message_id"] == posted["key"]
        assert await by_format.lines(1) == [b""]  # the heartbeat


async def test_websocket_sends_one_message_object_per_text_frame(api: Api) -> None:
    queue = await api.mkq()
    async with socket(api, queue) as ws:
        posted = await post_many(api, queue, ["a", "b"])
        assert [(await frame(ws))["message_id"] for _ in posted] == posted


async def test_head_checks_the_stream_and_starts_none(api: Api) -> None:
    queue = await api.mkq()
    result = await api.http.simulate_head(f"/v1/queuey/{queue}/stream", headers=AUTH)
    assert result.status_code == 200
    assert result.headers["content-type"] == "text/event-stream"
    bad = await api.http.simulate_head(f"/v1/queuey/{queue}/stream", params={"mode": "x"})
    assert bad.status_code == 400


# --- broadcast ----------------------------------------------------------------------------------


async def test_broadcast_gives_every_subscriber_every_message_of_its_partitions(api: Api) -> None:
    queue = await api.mkq(partitions=3)
    async with (
        stream(api, queue) as everything,
        stream(api, queue, partitions="2,3") as some,
        socket(api, queue, partitions="3") as ws,
    ):
        posted = [
            (await api.post(queue, f"m{p}", **{"X-Partition": str(p)}))["key"] for p in (1, 2, 3)
        ]
        assert [m["message_id"] for m in await everything.messages(3)] == posted
        assert [m["message_id"] for m in await some.messages(2)] == posted[1:]
        assert (await frame(ws))["message_id"] == posted[2]


async def test_broadcast_resumes_after_the_last_event_id_without_gap_or_repeat(api: Api) -> None:
    queue = await api.mkq(partitions=2)
    first = await post_many(api, queue, [f"a{i}" for i in range(5)])
    async with stream(api, queue, since="0") as events:
        seen = [m["message_id"] for m in await events.messages(5)]
    assert seen == first
    second = await post_many(api, queue, [f"b{i}" for i in range(4)])
    last = seen[2]
    for headers, params in (
        ({**AUTH, "Last-Event-ID": last}, {}),
        (AUTH, {"last_event_id": last}),
        (AUTH, {"after": last}),
        ({**AUTH, "Last-Event-ID": last}, {"after": first[0]}),  # a reconnection wins
    ):
        async with stream(api, queue, headers, **params) as events:
            expected = first[3:] + second
            got = [m["message_id"] for m in await events.messages(len(expected))]
            assert got == expected
            third = await post_many(api, queue, ["c"])
            assert [m["message_id"] for m in await events.messages(1)] == third
            assert await events.quiet(0.1) == b""
        second += third


async def test_broadcast_since_is_inclusive_and_may_be_a_timestamp(api: Api) -> None:
    queue = await api.mkq()
    posted = await post_many(api, queue, ["a", "b", "c"])
    read = await api.read(queue)
    async with stream(api, queue, since=posted[1]) as events:
        assert [m["message_id"] for m in await events.messages(2)] == posted[1:]
    async with stream(api, queue, since=read[2]["timestamp"]) as events:
        assert [m["message_id"] for m in await events.messages(1)] == posted[2:]


async def test_broadcast_catch_up_joins_the_live_feed_without_gap(api: Api) -> None:
    queue = await api.mkq()
    old = await post_many(api, queue, [f"o{i}" for i in range(1000)])
    old += await post_many(api, queue, [f"o{i}" for i in range(200)])
    async with stream(api, queue) as live:
        async with stream(api, queue, since="0") as behind:
            new = await post_many(api, queue, [f"n{i}" for i in range(30)])
            got = [m["message_id"] for m in await behind.messages(1230)]
            assert got == old + new
        assert [m["message_id"] for m in await live.messages(30)] == new


@pytest.mark.parametrize("api", SHARED_BACKENDS, indirect=True)  # one process: in id order
async def test_a_message_committed_late_by_another_process_still_arrives(api: Api) -> None:
    assert api.service.storage.shared
    queue = await api.mkq()
    stored = await api.service.storage.get_queue("queuey", queue)
    assert stored is not None
    async with stream(api, queue) as events:
        earlier = uuid1_hex(ticks_from_ns(api.clock.time_ns()) - 5, "8000000000000001")
        posted = await api.post(queue, "newer")
        assert [m["message_id"] for m in await events.messages(1)] == [posted["key"]]
        # Stamped before "newer" by another process, committed after it was published.
        late = Message(earlier, ticks_of(earlier) or 0, 1, "older", "text/plain", 2**62)
        await api.service.storage.write_messages(stored, [late])
        api.service.notifier.changed(("queuey", queue))
        assert [m["body"] for m in await events.messages(1)] == ["older"]
        assert await events.quiet(0.3) == b""


async def test_delayed_messages_arrive_when_due(api: Api) -> None:
    queue = await api.mkq()
    async with stream(api, queue) as events:
        posted = await api.post(queue, "later", **{"X-Delay": "5"})
        assert await events.quiet(0.2) == b""
        api.clock.advance(6)
        assert [m["message_id"] for m in await events.messages(1)] == [posted["key"]]


# --- round-robin --------------------------------------------------------------------------------


async def test_roundrobin_gives_each_message_to_one_subscriber_within_credit(api: Api) -> None:
    queue = await api.mkq(policy="roundrobin")  # the queue's policy is the default mode
    async with socket(api, queue, credit=2) as one, socket(api, queue, credit=2) as two:
        posted = await post_many(api, queue, [f"m{i}" for i in range(6)])
        got = [await frame(ws) for ws in (one, two, one, two)]
        assert sorted(m["message_id"] for m in got) == sorted(posted[:4])
        assert all(m["deliveries"] == 1 and m["claim_id"] for m in got)
        await asyncio.sleep(0.2)  # no more: both hold their credit
        assert (await api.read(queue, limit="10")) and len(got) == 4
        await one.send_text(orjson.dumps({"ack": [got[0]["claim_id"]]}).decode())
        assert await frame(one) == {"acked": [got[0]["claim_id"]], "failed": []}
        fifth = await frame(one)
        assert fifth["message_id"] in posted[4:]
        await ack(api, queue, got[1]["claim_id"])  # over HTTP: credit comes back too
        sixth = await frame(two)
        assert {fifth["message_id"], sixth["message_id"]} == set(posted[4:])


async def test_roundrobin_sse_and_claim_consumers_share_the_messages(api: Api) -> None:
    queue = await api.mkq()
    posted = await post_many(api, queue, [f"m{i}" for i in range(4)])
    claimed = await api.http.simulate_post(
        f"/v1/queuey/{queue}/claims", headers=AUTH, body="limit=2", content_type=FORM
    )
    taken = {m["message_id"] for m in claimed.json["messages"]}
    async with stream(api, queue, mode="roundrobin", credit=5) as events:
        got = await events.messages(2)
        assert {m["message_id"] for m in got} | taken == set(posted)
        assert await events.quiet(0.2) == b""


async def test_roundrobin_redelivers_unacked_messages_after_their_lease(api: Api) -> None:
    queue = await api.mkq(max_deliveries=2, claim_ttl=60)
    posted = await api.post(queue, "work")
    async with socket(api, queue, mode="roundrobin", ttl=5) as ws:
        first = await frame(ws)
        assert first["deliveries"] == 1 and first["claim_expires"] == _epoch(api, 5)
        api.clock.advance(6)
        second = await frame(ws)
        assert second["message_id"] == posted["key"] and second["deliveries"] == 2
        await ws.send_text(orjson.dumps({"ack": [first["claim_id"]]}).decode())
        assert await frame(ws) == {"acked": [], "failed": [first["claim_id"]]}
        api.clock.advance(6)  # exhausted: dead-lettered (dropped, no dead-letter queue)
        await asyncio.sleep(1.5)
    stats = await api.http.simulate_get(f"/v1/queuey/{queue}/stats", headers=AUTH)
    assert stats.json["stats"]["dead_lettered"] == 1 and stats.json["stats"]["messages"] == 0


async def test_roundrobin_extend_and_credit_frames(api: Api) -> None:
    queue = await api.mkq(policy="roundrobin")
    await post_many(api, queue, ["a", "b", "c"])
    async with socket(api, queue, credit=1, ttl=5) as ws:
        first = await frame(ws)
        await ws.send_text(orjson.dumps({"extend": [first["claim_id"]], "ttl": 100}).decode())
        assert await frame(ws) == {"extended": [first["claim_id"]], "failed": []}
        api.clock.advance(6)
        await asyncio.sleep(1.2)  # the lease was extended: nothing comes back, no credit
        await ws.send_text(orjson.dumps({"credit": 3}).decode())
        assert await frame(ws) == {"credit": 3}
        more = [await frame(ws), await frame(ws)]
        assert {m["body"] for m in more} == {"b", "c"}
        assert all(m["deliveries"] == 1 for m in more)


async def test_websocket_release_of_current_and_failed_claims_gives_the_credit_back(
    api: Api,
) -> None:
    queue = await api.mkq(policy="roundrobin", max_deliveries=5)
    await post_many(api, queue, ["a", "b", "c"])
    async with socket(api, queue, credit=2, ttl=60) as ws:
        first, second = await frame(ws), await frame(ws)
        forged = first["claim_id"][:34] + "f" * 16
        await ws.send_text(orjson.dumps({"extend": [first["claim_id"], forged], "ttl": 0}).decode())
        assert await frame(ws) == {"extended": [first["claim_id"]], "failed": [forged]}
        third = await frame(ws)  # the released claim's credit came back at once
        assert third["message_id"] != second["message_id"]
        assert (third["body"], third["deliveries"]) in {("a", 2), ("c", 1)}


async def test_websocket_forged_claim_ids_are_failed_entries(api: Api) -> None:
    """Ack and extend frames settle claims as the HTTP routes do: an id of a token no back-end
    hands out or of a partition the queue lacks is a failed entry, the real claim is settled."""
    queue = await api.mkq(policy="roundrobin", partitions=2)
    await post_many(api, queue, ["a", "b"])
    async with socket(api, queue, credit=2, ttl=30) as ws:
        first, second = (await frame(ws))["claim_id"], (await frame(ws))["claim_id"]
        forged = [first[:34] + "f" * 16, first[:32] + "03" + first[34:]]
        await ws.send_text(orjson.dumps({"extend": [second, *forged], "ttl": 60}).decode())
        assert await frame(ws) == {"extended": [second], "failed": forged}
        await ws.send_text(orjson.dumps({"ack": [first, *forged]}).decode())
        assert await frame(ws) == {"acked": [first], "failed": forged}
    stats = await api.http.simulate_get(f"/v1/queuey/{queue}/stats", headers=AUTH)
    assert stats.json["stats"]["messages"] == 1  # "b", still claimed


async def test_websocket_bad_frames_get_an_error_and_the_stream_goes_on(api: Api) -> None:
    queue = await api.mkq()
    async with socket(api, queue, mode="roundrobin") as ws:
        for text, key in (
            ("not json", "frame"),
            ("[1]", "frame"),
            ('{"ack": "x"}', "ack"),
            ('{"ack": ["zz"]}', "claim_ids"),
            ('{"extend": ["zz"]}', "ttl"),
            ('{"credit": 0}', "credit"),
        ):
            await ws.send_text(text)
            reply = await frame(ws)
            assert key in reply["error"], (text, reply)
        posted = await api.post(queue, "still here")
        assert (await frame(ws))["message_id"] == posted["key"]


async def test_at_most_once_roundrobin_needs_no_ack(api: Api) -> None:
    queue = await api.mkq(delivery="at_most_once")
    posted = await post_many(api, queue, ["a", "b", "c"])
    async with stream(api, queue, mode="roundrobin", credit=1) as events:
        got = await events.messages(3)
        assert [m["message_id"] for m in got] == posted
    assert await api.read(queue) == []


async def test_roundrobin_claims_not_yet_written_go_back_uncounted_when_the_subscriber_leaves(
    api: Api,
) -> None:
    from queuey.streams import End

    queue = await api.mkq(claim_ttl=60)
    hub = _hub(api)
    request = await hub.check(_caller(), "queuey", queue, {"mode": "roundrobin", "credit": "3"})
    leaving = await hub.subscribe(request, _framing())  # its frames are taken only when asked
    (written,) = await post_many(api, queue, ["written"])
    await _until(lambda: leaving.queued == 1)
    assert len(await leaving.take()) == 1  # handed to the socket: it may have arrived
    unsent = await post_many(api, queue, ["u1", "u2"])
    await _until(lambda: leaving.queued == 2)
    leaving.end(End.GONE)
    # The two never written are available at once, this claim their first delivery; the
    # written one stays claimed until its lease ends, then comes back counted.
    claimed = await _claim(api, queue, retry_until=2)
    assert sorted((m["message_id"], m["deliveries"]) for m in claimed) == [(i, 1) for i in unsent]
    await ack(api, queue, *(m["claim_id"] for m in claimed))
    api.clock.advance(61)
    [again] = await _claim(api, queue, retry_until=1)
    assert (again["message_id"], again["deliveries"]) == (written, 2)


async def test_at_most_once_roundrobin_messages_not_yet_written_go_back_when_it_leaves(
    api: Api,
) -> None:
    from queuey.streams import End

    queue = await api.mkq(delivery="at_most_once")
    hub = _hub(api)
    request = await hub.check(_caller(), "queuey", queue, {"mode": "roundrobin", "credit": "2"})
    leaving = await hub.subscribe(request, _framing())
    posted = await post_many(api, queue, ["a", "b"])
    await _until(lambda: leaving.queued == 2)
    assert await api.read(queue) == []  # claimed at most once: they left the queue
    leaving.end(End.GONE)
    await _until_async(lambda: _ids(api, queue), posted)


# --- pause, delete, buffer, shutdown ------------------------------------------------------------


async def test_pause_holds_delivery_and_resume_releases_what_arrived(api: Api) -> None:
    queue = await api.mkq()
    async with stream(api, queue) as events, socket(api, queue, mode="roundrobin") as ws:
        await _update(api, queue, paused="true")
        posted = await post_many(api, queue, ["a", "b"])
        assert await events.quiet(0.3) == b""
        await _update(api, queue, paused="false")
        assert [m["message_id"] for m in await events.messages(2)] == posted
        assert [(await frame(ws))["message_id"] for _ in posted] == posted


async def test_deleting_the_queue_ends_its_streams(api: Api) -> None:
    queue = await api.mkq()
    async with stream(api, queue) as events, socket(api, queue) as ws:
        async with stream(api, queue, format="ndjson") as lines:
            result = await api.http.simulate_delete(f"/v1/queuey/{queue}", headers=AUTH)
            assert result.status_code == 200
            await events.ended()
            assert b"event: end\n" in events.buffer
            await lines.ended()
            assert b"InvalidQueueName" in lines.buffer
        with pytest.raises(Exception):  # noqa: B017 (the simulator's disconnect error)
            await ws.receive_text()
        assert ws.close_code == 4404


async def test_a_subscriber_past_stream_buffer_is_disconnected(api: Api) -> None:
    from queuey.streams import End, Subscriber

    queue = await api.mkq()
    api.service.limits = replace(api.service.limits, stream_buffer=4096)
    hub = _hub(api)
    request = await hub.check(_caller(), "queuey", queue, {})
    slow = await hub.subscribe(request, _framing())
    assert isinstance(slow, Subscriber)
    await post_many(api, queue, ["x" * 1000] * 8)
    for _ in range(200):
        if slow.ended is not None:
            break
        await asyncio.sleep(0.01)
    assert slow.ended is End.OVERFLOW and slow.queued_bytes == 0
    assert hub.open == 0


async def test_shutdown_ends_streams(api: Api) -> None:
    queue = await api.mkq()
    async with stream(api, queue) as events, socket(api, queue) as ws:
        await _hub(api).stop()
        await events.ended()
        with pytest.raises(Exception):  # noqa: B017 (the simulator's disconnect error)
            await ws.receive_text()
        assert ws.close_code == 1012


# --- rights, parameters, limits -----------------------------------------------------------------


async def test_rights_broadcast_reads_roundrobin_claims_public_streams_to_anyone(api: Api) -> None:
    public = await api.mkq(type="public")
    shared = await api.mkq(principles="app:notifications")
    private = await api.mkq()
    async with stream(api, public, headers={}) as events:
        posted = await api.post(public, "for all")
        assert (await events.messages(1))[0]["message_id"] == posted["key"]
    await refused(api, public, 401, "Unauthorized", mode="roundrobin", headers={})
    await refused(api, private, 401, "Unauthorized", headers={})
    await refused(api, private, 403, "Forbidden", headers=OTHER_AUTH)
    await refused(api, private, 403, "Forbidden", headers=THIRD_AUTH, mode="roundrobin")
    async with stream(api, shared, headers=OTHER_AUTH, mode="roundrobin") as events:
        posted = await api.post(shared, "work")
        assert (await events.messages(1))[0]["message_id"] == posted["key"]
    await refused(api, "nope", 404, "InvalidQueueName")


async def test_credentials_in_the_url_token_invalid_key_never(api: Api) -> None:
    queue = await api.mkq(type="public")
    await refused(api, queue, 401, "InvalidToken", token="abc", headers={})
    await refused(api, queue, 401, "InvalidToken", token="abc")
    private = await api.mkq()
    key = AUTH["Authorization"].split()[1]
    await refused(api, private, 401, "Unauthorized", key=key, headers={})
    await refused(api, private, 401, "Unauthorized", Authorization=f"Application {key}", headers={})


async def test_a_stream_opened_with_a_token_ends_when_the_token_expires(api: Api) -> None:
    queue = await api.mkq()
    token = await _token(api, queue, ttl=1)
    async with stream(api, queue, headers={}, token=token) as events:
        posted = await api.post(queue, "while valid")
        assert (await events.messages(1))[0]["message_id"] == posted["key"]
        started = time.monotonic()
        await events.ended()
        assert time.monotonic() - started < 2.0
        *_, end = events.buffer.decode().strip().split("\n\n")
        assert end.startswith("event: end\ndata: ")
        assert orjson.loads(end.split("data: ", 1)[1])["error_msg"] == {
            "InvalidToken": "The token is expired, invalid or not for this application."
        }
    async with stream(api, queue, headers={}, token=token, format="ndjson") as lines:
        await lines.ended()
        assert b"InvalidToken" in lines.buffer
    token = await _token(api, queue, ttl=1)
    async with socket(api, queue, headers={}, token=token) as ws:
        posted = await api.post(queue, "over the socket")
        assert (await frame(ws))["message_id"] == posted["key"]
        with pytest.raises(Exception):  # noqa: B017 (the simulator's disconnect error)
            await asyncio.wait_for(ws.receive_text(), TIMEOUT)
        assert ws.close_code == 4401


async def test_websocket_takes_a_token_in_the_url_never_an_application_key(api: Api) -> None:
    queue = await api.mkq()
    async with socket(api, queue, headers={}, token=await _token(api, queue)) as ws:
        posted = await api.post(queue, "hello")
        assert (await frame(ws))["message_id"] == posted["key"]
    key = AUTH["Authorization"].split()[1]
    for params in ({"token": key}, {"key": key}):
        with pytest.raises(WebSocketDisconnected) as refusal:
            async with socket(api, queue, {}, **params):
                pass
        assert refusal.value.code == 3401, params


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"mode": "fanout"}, "mode"),
        ({"format": "xml"}, "format"),
        ({"partitions": "a"}, "partitions"),
        ({"after": "zz"}, "after"),
        ({"since": "yesterday"}, "since"),
        ({"since": "0", "after": "04afc000833b11eeb948ffed074b2dc3"}, "after"),
        ({"last_event_id": "zz"}, "last_event_id"),
        ({"ttl": "0"}, "ttl"),
        ({"mode": "roundrobin", "ttl": "43201"}, "ttl"),
        ({"mode": "roundrobin", "credit": "0"}, "credit"),
        ({"mode": "roundrobin", "credit": "1001"}, "credit"),
        ({"credit": "5"}, "credit"),  # round-robin only
        ({"mode": "roundrobin", "after": "04afc000833b11eeb948ffed074b2dc3"}, "after"),
    ],
)
async def test_bad_parameters_are_400_before_the_stream(
    api: Api, params: dict[str, str], key: str
) -> None:
    queue = await api.mkq()
    await refused(api, queue, 400, key, **params)


async def test_bad_last_event_id_header_is_400(api: Api) -> None:
    queue = await api.mkq()
    await refused(api, queue, 400, "Last-Event-ID", headers={**AUTH, "Last-Event-ID": "x"})


async def test_websocket_refusals_close_before_accepting(api: Api) -> None:
    queue = await api.mkq()
    for name, headers, query, code in (
        (queue, {}, "", 3401),
        (queue, AUTH, "mode=x", 3400),
        (queue, AUTH, "token=t", 3401),
        ("nope", AUTH, "", 3404),
    ):
        with pytest.raises(WebSocketDisconnected) as refusal:
            async with socket(api, name, headers, **dict(parse_qsl(query))):
                pass
        assert refusal.value.code == code


async def test_max_streams_is_503_with_retry_after(api: Api) -> None:
    api.service.limits = replace(api.service.limits, max_streams=1)
    queue = await api.mkq()
    async with stream(api, queue):
        result = await api.http.simulate_get(f"/v1/queuey/{queue}/stream", headers=AUTH)
        assert result.status_code == 503 and result.headers["retry-after"] == "1"
        assert "max_streams" in result.json["error_msg"]
    async with stream(api, queue):  # the first one ended: there is room again
        pass


# --- helpers ------------------------------------------------------------------------------------


def _epoch(api: Api, seconds: int) -> str:
    ms = api.clock.time_ns() // 1_000_000 + seconds * 1000
    return "%d.%03d0000" % divmod(ms, 1000)  # noqa: UP031


async def _update(api: Api, queue: str, **params: str) -> None:
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}", headers=AUTH, body=urlencode(params), content_type=FORM
    )
    assert result.status_code == 200, result.text


def _hub(api: Api) -> Any:
    from queuey.api.asgi import Sockets
    from queuey.api.streams import StreamSocket

    app: Any = getattr(api.http.app, "__wrapped__", api.http.app)  # under patient()
    handler = app.websocket
    if isinstance(handler, Sockets):  # the front ends' WebSocket paths beside the stream's
        handler = handler.default
    assert isinstance(handler, StreamSocket)
    return handler.streams


def _caller() -> Any:
    from queuey.core.models import Caller

    return Caller("queuey")


def _framing() -> Any:
    from queuey.api.streams import NDJSON_FRAMING

    return NDJSON_FRAMING


async def _token(api: Api, queue: str, ttl: int = 3600) -> str:
    """A token that may stream ``queue``, for ``ttl`` seconds."""
    params = {"subject": "user:ann", "queues": queue, "rights": "read,stream", "ttl": ttl}
    result = await api.http.simulate_post(
        "/tokens/queuey", headers=AUTH, body=urlencode(params), content_type=FORM
    )
    assert result.status_code == 201, result.text
    token: str = result.json["token"]
    return token


async def _until(ready: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _until_async(get: Any, expected: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (got := await get()) != expected:
        assert time.monotonic() < deadline, f"timed out: {got!r}"
        await asyncio.sleep(0.02)


async def _ids(api: Api, queue: str) -> list[str]:
    return [m["message_id"] for m in await api.read(queue)]


async def _claim(api: Api, queue: str, retry_until: int) -> list[dict[str, Any]]:
    """Claim up to 10 messages (over HTTP), trying again until ``retry_until`` come."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < retry_until:
        result = await api.http.simulate_post(
            f"/v1/queuey/{queue}/claims", headers=AUTH, body="limit=10", content_type=FORM
        )
        assert result.status_code in (200, 204), result.text
        got += result.json["messages"] if result.status_code == 200 else []
        assert time.monotonic() < deadline, f"timed out: {got!r}"
        await asyncio.sleep(0.02)
    return got
