"""Typed parameter parsers: values of the fields' types, every bad field reported at once."""

from __future__ import annotations

import time

import pytest

from queuey.core.errors import InvalidMessageID, InvalidRequest
from queuey.core.ids import ticks_of, uuid1_hex
from queuey.core.limits import MAX_PRINCIPLES, Limits
from queuey.core.models import Cursor, QueueSettings
from queuey.service import params
from queuey.service.claim_ids import parse_claim_ids

LIMITS = Limits()
ID = "e4a0c2f2d11b11ecb8d3a0b1c2d3e4f5"


def errors_of(raised: pytest.ExceptionInfo[InvalidRequest]) -> dict[str, str]:
    return dict(raised.value.errors)


def test_read_params_have_their_defaults_and_types() -> None:
    asked = params.read_params({}, LIMITS)
    assert asked == params.ReadParams(100, False, [1], None, 0)
    asked = params.read_params(
        {"limit": "5", "order": "descending", "partitions": "2,1,2", "after": ID.upper(),
         "wait": "3"},
        LIMITS,
    )  # fmt: skip
    cursor = Cursor(ticks_of(ID) or 0, ID, inclusive=False)
    assert asked == params.ReadParams(5, True, [2, 1], cursor, 3)


def test_every_bad_read_param_is_reported_at_once() -> None:
    with pytest.raises(InvalidRequest) as raised:
        params.read_params(
            {"limit": "0", "order": "up", "partitions": "x", "since": "1", "after": ID,
             "wait": "21"},
            LIMITS,
        )  # fmt: skip
    assert errors_of(raised) == {
        "limit": "0 is less than minimum value 1",
        "order": '"up" is not one of ascending, descending',
        "partitions": '"x" is not a valid comma separated list of integers or a single integer.',
        "after": "since and after cannot be used together",
        "wait": "21 is greater than maximum value 20",
    }


def test_a_new_queue_gets_a_name_and_the_settings_sent() -> None:
    name, settings = params.new_queue({"partitions": "3", "paused": "yes"}, LIMITS)
    assert len(name) == 32
    assert settings == QueueSettings(partitions=3, paused=True)
    name, _ = params.new_queue({"queue_name": "jobs"}, LIMITS)
    assert name == "jobs"


def test_every_bad_queue_setting_is_reported_at_once() -> None:
    with pytest.raises(InvalidRequest) as raised:
        params.new_queue(
            {"queue_name": "a b", "type": "private", "claim_ttl": "0", "principles": "me",
             "colour": "red"},
            LIMITS,
        )  # fmt: skip
    assert set(errors_of(raised)) == {"colour", "queue_name", "type", "claim_ttl", "principles"}


def test_an_update_keeps_what_was_not_sent() -> None:
    current = QueueSettings(partitions=2, delay=5, principles=("app:other",))
    assert params.queue_update({"delay": "0"}, current, LIMITS) == QueueSettings(
        partitions=2, principles=("app:other",)
    )
    with pytest.raises(InvalidRequest) as raised:
        params.queue_update({"queue_name": "renamed"}, current, LIMITS)
    assert list(errors_of(raised)) == ["queue_name"]


def test_claim_params_and_lease_ttl() -> None:
    assert params.claim_params({}, 30, LIMITS) == params.ClaimParams(1, 30, 0, None)
    assert params.claim_params({"partitions": "3,1"}, 30, LIMITS).partitions == [3, 1]
    assert params.lease_ttl({"ttl": "0"}) == 0
    with pytest.raises(InvalidRequest) as raised:
        params.lease_ttl({})
    assert errors_of(raised) == {"ttl": "Required"}


def test_message_ids_default_to_partition_1_and_come_once() -> None:
    assert params.message_ids(f"{ID}, 2:{ID.upper()},{ID}", 200) == [(1, ID), (2, ID)]
    for bad in ("", "nope", f"201:{ID}", f"0:{ID}"):
        with pytest.raises(InvalidMessageID):
            params.message_ids(bad, 200)


def test_lists_are_bounded_and_a_longer_one_is_refused_naming_the_field() -> None:
    limits = Limits(max_partitions=3)
    assert params.read_params({"partitions": "3, 1,,2"}, limits).partitions == [3, 1, 2]
    assert params.claim_params({"partitions": "2,2"}, 30, limits).partitions == [2]
    too_many = {"partitions": "1,2,3,1"}  # no list can usefully name more than the maximum
    expected = {"partitions": "4 partitions is more than the maximum of 3"}
    with pytest.raises(InvalidRequest) as raised:
        params.read_params(too_many, limits)
    assert errors_of(raised) == expected
    with pytest.raises(InvalidRequest) as raised:
        params.claim_params(too_many, 30, limits)
    assert errors_of(raised) == expected

    principals = [f"app:a{n}" for n in range(MAX_PRINCIPLES)]
    _, settings = params.new_queue({"principles": ",".join(principals)}, LIMITS)
    assert settings.principles == tuple(principals)
    _, settings = params.new_queue({"principles": ",".join(principals[:50] * 2)}, LIMITS)
    assert settings.principles == tuple(principals[:50])
    with pytest.raises(InvalidRequest) as raised:
        params.new_queue({"principles": ",".join([*principals, "user:x"])}, LIMITS)
    assert errors_of(raised) == {
        "principles": f"{MAX_PRINCIPLES + 1} principles is more than the maximum of "
        f"{MAX_PRINCIPLES}"
    }


def test_long_lists_of_ids_are_parsed_in_linear_time() -> None:
    ids = [uuid1_hex(n, "8" + "0" * 15) for n in range(1, 40_001)]
    message_ids = ",".join(f"{n % 200 + 1}:{id_}" for n, id_ in enumerate(ids))
    claim_ids = ",".join(f"{id_}01{n:016x}" for n, id_ in enumerate(ids))
    started = time.perf_counter()
    assert len(params.message_ids(message_ids, 200)) == 40_000
    assert len(parse_claim_ids(claim_ids)[1]) == 40_000
    assert time.perf_counter() - started < 2  # 40,000 membership scans of a list: minutes
