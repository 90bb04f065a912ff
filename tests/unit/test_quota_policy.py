"""The quota policy's accounting of stored usage (:mod:`queuey.service.quotas`): a measurement
plus what this process stored since it began plus posts in flight."""

from __future__ import annotations

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import QuotaExceeded
from queuey.core.ids import IdGenerator
from queuey.core.models import Message, QueueSettings
from queuey.core.quotas import Quotas, QuotaSettings, Usage
from queuey.service.quotas import QuotaPolicy
from queuey.storage.memory import MemoryStorage

HOUR_MS = 3_600_000


def messages(clock: FakeClock, *bodies: str) -> list[Message]:
    gen = IdGenerator(clock)
    expires = clock.time_ns() // 1_000_000 + HOUR_MS
    return [Message(*gen.next(), 1, body, "text/plain", expires) for body in bodies]


async def policy(storage: MemoryStorage, clock: FakeClock, **quotas: int) -> QuotaPolicy:
    settings = QuotaSettings(applications={"app": Quotas(**quotas)})
    found = QuotaPolicy(storage, clock, settings, ["app", "other"])
    await found.measure()
    return found


async def test_posts_in_flight_count_so_concurrent_posts_cannot_pass_together() -> None:
    clock = FakeClock()
    quotas = await policy(MemoryStorage(), clock, max_stored_messages=3)
    first = await quotas.reserve("app", messages(clock, "a", "b"))
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.reserve("app", messages(clock, "c", "d"))  # the first is not written yet
    assert refused.value.details == {"quota": "max_stored_messages", "limit": 3}
    quotas.settle("app", first, stored=False)  # the write failed: nothing stored
    assert quotas.usage("app") == Usage(0, 0)
    second = await quotas.reserve("app", messages(clock, "c", "d", "e"))
    quotas.settle("app", second, stored=True)
    assert quotas.usage("app") == Usage(3, 3)


async def test_a_measurement_replaces_what_was_counted_before_it_began() -> None:
    clock = FakeClock()
    storage = MemoryStorage()
    queue = await storage.create_queue("app", "q", QueueSettings(), 0.0)
    quotas = await policy(storage, clock, max_stored_bytes=100)
    written = messages(clock, "x" * 10, "é" * 10)
    added = await quotas.reserve("app", written)
    await storage.write_messages(queue, written)
    quotas.settle("app", added, stored=True)
    assert quotas.usage("app") == Usage(2, 30)
    # Another process stores 40 bytes; this one learns of it at its next measurement.
    await storage.write_messages(queue, messages(clock, "y" * 40))
    assert quotas.usage("app") == Usage(2, 30)
    await quotas.measure()
    assert quotas.usage("app") == Usage(3, 70)
    in_flight = await quotas.reserve("app", messages(clock, "z" * 30))
    await quotas.measure()  # a post still in flight stays counted, once
    assert quotas.usage("app") == Usage(4, 100)
    with pytest.raises(QuotaExceeded):
        await quotas.reserve("app", messages(clock, "!"))
    quotas.settle("app", in_flight, stored=False)
    assert quotas.usage("app") == Usage(3, 70)


async def test_applications_without_stored_quotas_are_never_measured() -> None:
    clock = FakeClock()
    quotas = await policy(MemoryStorage(), clock, max_queues=1, post_rate=10)
    assert not quotas.limits_posts("other") and quotas.limits_posts("app")
    assert quotas.usage("app") is None and quotas.usage("other") is None
