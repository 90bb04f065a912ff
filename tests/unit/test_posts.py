"""New messages from posts: ids, TTLs, delays, partitions and dedup ids, checked before
anything is written."""

from __future__ import annotations

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import InvalidParameter, InvalidRequest, PayloadTooLarge
from queuey.core.ids import TICKS_PER_SECOND
from queuey.core.limits import Limits
from queuey.core.models import Queue, QueueSettings
from queuey.service.posts import DEFAULT_CONTENT_TYPE, MessageFactory

QUEUE = Queue("app", "q", 1, 0.0, QueueSettings(partitions=3))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def now_ms(clock: FakeClock) -> int:
    return clock.time_ns() // 1_000_000


def test_a_raw_post_is_one_message_with_the_headers_applied(clock: FakeClock) -> None:
    new = MessageFactory(Limits(), clock).raw(QUEUE, b"hi", None, "10", "2", None, "once")
    [message] = new.messages
    assert (message.body, message.partition, message.content_type) == ("hi", 2, "text/plain")
    assert message.expires_ms == now_ms(clock) + 10_000
    assert message.due_ms == 0
    assert new.dedup_ids == ["once"]


def test_a_delayed_message_gets_the_id_of_when_it_falls_due(clock: FakeClock) -> None:
    factory = MessageFactory(Limits(), clock)
    [now] = factory.raw(QUEUE, b"now", None, "10", None, None, None).messages
    [later] = factory.raw(QUEUE, b"later", None, "10", None, "60", None).messages
    assert later.due_ms == now_ms(clock) + 60_000
    assert later.expires_ms == now_ms(clock) + 70_000  # the TTL counts from when it is due
    assert later.ticks - now.ticks >= 60 * TICKS_PER_SECOND


def test_every_bad_header_is_reported_at_once(clock: FakeClock) -> None:
    with pytest.raises(InvalidRequest) as raised:
        MessageFactory(Limits(), clock).raw(QUEUE, b"", None, "0", "4", "-1", "x" * 257)
    assert list(raised.value.errors) == ["body", "ttl", "partition", "delay", "dedup_id"]


def test_a_batch_keeps_its_order_and_dedup_ids(clock: FakeClock) -> None:
    payload = {
        "messages": [
            {"body": "a"},
            {"body": 7, "partition": 3, "content_type": "application/json", "dedup_id": "d"},
            {"body": "c", "delay": 5},
        ]
    }
    new = MessageFactory(Limits(), clock).batch(QUEUE, payload)
    assert [m.body for m in new.messages] == ["a", "7", "c"]
    assert new.messages[1].partition == 3
    assert [m.content_type for m in new.messages[:2]] == [DEFAULT_CONTENT_TYPE, "application/json"]
    assert new.messages[2].due_ms == now_ms(clock) + 5_000
    assert new.dedup_ids == [None, "d", None]
    assert new.messages[0].ticks < new.messages[1].ticks


def test_a_batch_reports_every_bad_item_and_writes_nothing(clock: FakeClock) -> None:
    payload = {
        "messages": [{"body": "ok"}, "text", {"body": "", "ttl": 0}, {"body": "x", "partition": 9}]
    }
    with pytest.raises(InvalidRequest) as raised:
        MessageFactory(Limits(), clock).batch(QUEUE, payload)
    assert list(raised.value.errors) == ["1", "2.body", "2.ttl", "3.partition"]


def test_a_batch_that_is_not_a_list_of_messages_or_too_long_is_refused(clock: FakeClock) -> None:
    factory = MessageFactory(Limits(max_batch_messages=2), clock)
    with pytest.raises(InvalidParameter):
        factory.batch(QUEUE, {"messages": "none"})
    with pytest.raises(InvalidRequest, match="messages"):
        factory.batch(QUEUE, {"messages": [{"body": "a"}] * 3})
    with pytest.raises(PayloadTooLarge):
        MessageFactory(Limits(max_message_bytes=4), clock).batch(
            QUEUE, {"messages": [{"body": "é" * 3}]}
        )


def test_overwrites_keep_ids_and_restart_the_ttl(clock: FakeClock) -> None:
    [first] = MessageFactory(Limits(), clock).raw(QUEUE, b"a", None, None, "1", None, None).messages
    clock.advance(5)
    [again] = MessageFactory(Limits(), clock).overwrites(
        QUEUE, [(1, first.id)], b"b", "text/html", "20"
    )
    assert (again.id, again.ticks, again.body) == (first.id, first.ticks, "b")
    assert again.expires_ms == now_ms(clock) + 20_000
