"""``Client`` against a real ``queuey serve``: every method, and errors as exceptions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from queuey.client import (
    AuthFailed,
    BadRequest,
    ClaimExpired,
    Client,
    Extension,
    Message,
    NewMessage,
    NotFound,
    QueueExists,
)
from tests.client.servers import OTHER_KEY

pytestmark = pytest.mark.e2e


def test_a_queue_is_created_with_its_settings_updated_and_deleted(
    client: Client, queue: str
) -> None:
    created = client.create_queue(
        queue, partitions=2, type="public", principles=["app:other"], claim_ttl=60,
        delivery="exactly_once", max_deliveries=3, delay=0, dedup_window=60, paused=False,
    )  # fmt: skip
    assert created.name == queue
    assert created.settings is not None
    assert (created.settings.partitions, created.settings.type) == (2, "public")
    assert created.settings.principles == ("app:other",)
    assert (created.settings.claim_ttl, created.settings.delivery) == (60, "exactly_once")
    assert created.settings.max_deliveries == 3
    updated = client.update_queue(queue, partitions=3, paused=True, policy="roundrobin")
    assert updated.settings is not None
    assert (updated.settings.partitions, updated.settings.paused) == (3, True)
    assert updated.settings.policy == "roundrobin"
    assert updated.settings.claim_ttl == 60  # what the update leaves out is kept
    client.delete_queue(queue)
    with pytest.raises(NotFound) as missing:
        client.stats(queue)
    assert missing.value.status == 404
    assert "InvalidQueueName" in missing.value.error_msg


def test_a_queue_without_a_name_gets_a_new_one(client: Client) -> None:
    created = client.create_queue()
    assert len(created.name) == 32
    client.delete_queue(created.name)


def test_listing_pages_by_name_with_details_and_counts(client: Client, queue: str) -> None:
    names = [f"{queue}-{n}" for n in range(3)]
    for name in names:
        client.create_queue(name, partitions=2)
    client.post(names[1], "one")
    page = client.list_queues(offset=names[1], limit=2)
    assert [q.name for q in page] == names[1:]
    assert page[0].settings is None and page[0].count is None
    detailed = client.list_queues(offset=names[0], limit=3, details=True)
    assert [q.settings.partitions if q.settings else None for q in detailed] == [2, 2, 2]
    assert all(q.created_at is not None and q.created_at > 1e9 for q in detailed)
    counted = client.list_queues(offset=names[0], limit=3, include_count=True)
    assert [q.count for q in counted] == [0, 1, 0]


def test_a_second_create_with_other_settings_raises_queue_exists(
    client: Client, queue: str
) -> None:
    client.create_queue(queue, partitions=1)
    with pytest.raises(QueueExists) as exists:
        client.create_queue(queue, partitions=4)
    assert exists.value.status == 409
    assert "QueueAlreadyExists" in exists.value.error_msg


def test_a_raw_post_carries_ttl_partition_and_content_type(client: Client, queue: str) -> None:
    client.create_queue(queue, partitions=2)
    posted = client.post(queue, "hello", ttl=600, partition=2, content_type="text/csv")
    assert posted.partition == 2 and len(posted.key) == 32 and not posted.duplicate
    [message] = client.read(queue, partitions=[2])
    assert (message.message_id, message.timestamp) == (posted.key, posted.timestamp)
    assert (message.body, message.content_type) == ("hello", "text/csv")
    assert client.post(queue, b"bytes too").partition in (1, 2)


def test_a_json_post_is_stored_as_one_json_message(client: Client, queue: str) -> None:
    client.create_queue(queue)
    client.post(queue, '{"order": 42}', content_type="application/json")
    [message] = client.read(queue)
    assert (message.body, message.content_type) == ('{"order": 42}', "application/json")


def test_a_dedup_id_stores_one_message_and_a_delay_hides_it(client: Client, queue: str) -> None:
    client.create_queue(queue)
    first = client.post(queue, "charge 42", dedup_id="order-42")
    again = client.post(queue, "charge 42", dedup_id="order-42")
    assert (again.key, again.duplicate, first.duplicate) == (first.key, True, False)
    client.post(queue, "later", delay=60)
    assert [m.body for m in client.read(queue)] == ["charge 42"]
    assert client.stats(queue).delayed == 1


def test_a_batch_keeps_its_order_and_is_refused_whole(client: Client, queue: str) -> None:
    client.create_queue(queue, partitions=2)
    posted = client.post_batch(
        queue, ["one", NewMessage("two", partition=2, ttl=60, content_type="text/x")]
    )
    assert [p.partition for p in posted] == [posted[0].partition, 2]
    assert [m.body for m in client.get_messages(queue, posted)] == ["one", "two"]
    with pytest.raises(BadRequest) as refused:
        client.post_batch(queue, ["three", NewMessage("four", partition=3)])
    assert refused.value.error_msg == {"1.partition": "3 is greater than maximum value 2"}
    assert len(client.read(queue, partitions=[1, 2])) == 2


def test_reads_follow_since_after_order_limit_and_partitions(client: Client, queue: str) -> None:
    client.create_queue(queue, partitions=2)
    client.post(queue, "old", partition=1)
    time.sleep(0.01)
    now = time.time()
    posted = client.post_batch(queue, [NewMessage(str(n), partition=1) for n in range(5)])
    client.post(queue, "other partition", partition=2)
    assert [m.body for m in client.read(queue, since=now)] == ["0", "1", "2", "3", "4"]
    assert [m.body for m in client.read(queue, since=posted[2].timestamp)] == ["2", "3", "4"]
    assert [m.body for m in client.read(queue, after=posted[3].key)] == ["4"]
    assert [m.body for m in client.read(queue, order="descending", limit=2)] == ["4", "3"]
    assert [m.partition for m in client.read(queue, partitions=[2, 1], limit=1)] == [2, 1]


@contextmanager
def posting_soon(client: Client, queue: str, body: str) -> Iterator[None]:
    """Post ``body`` half a second after entering (from another thread)."""
    poster = threading.Timer(0.5, lambda: client.post(queue, body))
    poster.start()
    try:
        yield
    finally:
        poster.join()


def test_a_read_with_wait_answers_when_a_message_arrives(client: Client, queue: str) -> None:
    client.create_queue(queue)
    started = time.monotonic()
    with posting_soon(client, queue, "news"):
        found = client.read(queue, wait=10)
    assert [m.body for m in found] == ["news"]
    assert time.monotonic() - started < 5


def test_messages_by_id_are_fetched_overwritten_and_deleted(client: Client, queue: str) -> None:
    client.create_queue(queue, partitions=2)
    first, second = client.post_batch(queue, [NewMessage("a", partition=2), "b"])
    assert [m.body for m in client.get_messages(queue, [first.ref, second])] == ["a", "b"]
    client.put_messages(queue, [first], "A", ttl=600, content_type="text/upper")
    [message] = client.get_messages(queue, [first.ref])
    assert (message.body, message.content_type, message.ref) == ("A", "text/upper", first.ref)
    client.delete_messages(queue, [first, second.ref])
    assert client.get_messages(queue, [first, second]) == []


def test_claims_are_acked_extended_and_released(client: Client, queue: str) -> None:
    client.create_queue(queue, partitions=2, claim_ttl=30)
    client.post_batch(queue, [NewMessage(body, partition=1) for body in "ab"])
    client.post(queue, "c", partition=2)
    claimed = client.claim(queue, limit=2, ttl=20, partitions=[1])
    assert [(m.body, m.deliveries) for m in claimed] == [("a", 1), ("b", 1)]
    assert all(float(m.claim_expires) > time.time() + 10 for m in claimed)
    extension = client.extend(queue, claimed, 60)
    assert extension.extended == tuple(m.claim_id for m in claimed)
    assert float(extension.claim_expires or 0) > time.time() + 50
    assert client.ack(queue, claimed[:1]) == [claimed[0].claim_id]
    assert client.release(queue, [claimed[1].claim_id]) == Extension((claimed[1].claim_id,), None)
    again = client.claim(queue, limit=5)
    assert sorted((m.body, m.deliveries) for m in again) == [("b", 2), ("c", 1)]
    stats = client.stats(queue)
    assert (stats.messages, stats.available, stats.claimed) == (2, 0, 2)


def test_an_ack_of_a_claim_no_longer_current_raises_claim_expired(
    client: Client, queue: str
) -> None:
    client.create_queue(queue)
    client.post_batch(queue, ["a", "b"])
    first, second = client.claim(queue, limit=2)
    client.ack(queue, [first])
    with pytest.raises(ClaimExpired) as expired:
        client.ack(queue, [first, second])
    assert expired.value.status == 409
    assert (expired.value.done, expired.value.failed) == ([second.claim_id], [first.claim_id])
    with pytest.raises(ClaimExpired) as extension:
        client.extend(queue, [first], 10)
    assert extension.value.failed == [first.claim_id]


def test_a_claim_with_wait_answers_when_a_message_arrives(client: Client, queue: str) -> None:
    client.create_queue(queue)
    assert client.claim(queue) == []
    with posting_soon(client, queue, "job"):
        claimed = client.claim(queue, wait=10)
    assert [m.body for m in claimed] == ["job"]


def test_stats_count_each_state(client: Client, queue: str) -> None:
    client.create_queue(queue, claim_ttl=45)
    assert client.stats(queue).oldest is None
    posted = client.post_batch(queue, ["a", "b", "c"])
    client.post(queue, "later", delay=60)
    client.claim(queue)
    stats = client.stats(queue)
    assert (stats.messages, stats.available, stats.claimed, stats.delayed) == (3, 2, 1, 1)
    assert (stats.oldest, stats.claim_ttl, stats.delivery) == (
        posted[0].timestamp, 45, "at_least_once",
    )  # fmt: skip


def test_heartbeat_and_version_answer(client: Client) -> None:
    assert client.heartbeat() is True
    assert client.version()["name"] == "queuey"


def test_credentials_are_checked(url: str, client: Client, queue: str) -> None:
    client.create_queue(queue)
    with Client(url, "not-a-key") as stranger, pytest.raises(AuthFailed) as unknown:
        stranger.list_queues()
    assert (unknown.value.status, unknown.value.error_msg) == (
        401, {"InvalidApplicationKey": "Invalid application key"},
    )  # fmt: skip
    with Client(url, OTHER_KEY) as other, pytest.raises(AuthFailed) as forbidden:
        other.post(queue, "not mine")
    assert forbidden.value.status == 403


def test_a_public_queue_is_read_without_a_key(url: str, client: Client, queue: str) -> None:
    client.create_queue(queue, type="public")
    client.post(queue, "for everyone")
    with Client(url) as anonymous:
        found: list[Message] = anonymous.read(queue)
    assert [m.body for m in found] == ["for everyone"]


def test_invalid_parameters_raise_bad_request_naming_them(client: Client, queue: str) -> None:
    client.create_queue(queue)
    with pytest.raises(BadRequest) as refused:
        client.read(queue, limit=0, order="descending")
    assert refused.value.error_msg == {"limit": "0 is less than minimum value 1"}
    assert str(refused.value) == "400 limit: 0 is less than minimum value 1"
    with pytest.raises(BadRequest):
        client.update_queue(queue, partitions=0)
