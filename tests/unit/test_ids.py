from __future__ import annotations

import uuid

from queuey.core.clock import FakeClock
from queuey.core.ids import (
    IdGenerator,
    ticks_from_timestamp,
    ticks_of,
    timestamp_of,
)


def test_generated_ids_are_version_1_uuids_carrying_the_clock_time() -> None:
    clock = FakeClock(1_335_393_542.123456)
    message_id, ticks = IdGenerator(clock).next()
    parsed = uuid.UUID(hex=message_id)
    assert parsed.version == 1 and parsed.variant == uuid.RFC_4122
    assert message_id == parsed.hex
    assert parsed.time == ticks == ticks_of(message_id)
    assert timestamp_of(ticks) == "1335393542.1234560"


def test_ids_strictly_increase_even_when_the_clock_stands_still() -> None:
    generator = IdGenerator(FakeClock())
    ticks = [generator.next()[1] for _ in range(1000)]
    assert ticks == sorted(set(ticks))


def test_two_generators_never_collide_at_the_same_tick() -> None:
    clock = FakeClock()
    assert IdGenerator(clock).next()[0] != IdGenerator(clock).next()[0]


def test_ticks_of_accepts_only_version_1_hex() -> None:
    assert ticks_of(uuid.uuid1().hex) is not None
    assert ticks_of(uuid.uuid4().hex) is None
    assert ticks_of(uuid.uuid1().hex.upper()) is None
    assert ticks_of("z" * 32) is None
    assert ticks_of("abc") is None


def test_timestamps_round_trip_with_seven_decimals() -> None:
    ticks = ticks_from_timestamp("1335393542.1234567")
    assert ticks is not None and timestamp_of(ticks) == "1335393542.1234567"
    short = ticks_from_timestamp("12.5")
    assert short is not None and timestamp_of(short) == "12.5000000"
    longer = ticks_from_timestamp("1.123456789")
    assert longer is not None and timestamp_of(longer) == "1.1234567"
    for bad in ("abc", "123.", "-1", "1e5", "", "1.2.3"):
        assert ticks_from_timestamp(bad) is None, bad


def test_ids_in_bulk_are_consecutive_valid_and_cross_time_low_rollover() -> None:
    from queuey.core.ids import UUID_EPOCH_OFFSET

    rollover = ((UUID_EPOCH_OFFSET >> 32) + 100_000) << 32  # a time_low wrap after 1970
    clock = FakeClock(start_ns=(rollover - 2 - UUID_EPOCH_OFFSET) * 100)
    generator = IdGenerator(clock)
    ids, first = generator.next_many(5)
    assert first == rollover - 2
    assert [uuid.UUID(hex=i).time for i in ids] == list(range(first, first + 5))
    assert all(uuid.UUID(hex=i).version == 1 for i in ids)
    assert generator.next()[1] == first + 5
