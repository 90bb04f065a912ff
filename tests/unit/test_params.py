"""Typed parameter parsers: values of the fields' types, every bad field reported at once."""

from __future__ import annotations

import pytest

from queuey.core.errors import InvalidMessageID, InvalidRequest
from queuey.core.ids import ticks_of
from queuey.core.limits import Limits
from queuey.core.models import Cursor, QueueSettings
from queuey.service import params

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
    assert params.claim_params({}, 30) == params.ClaimParams(1, 30, 0, None)
    assert params.claim_params({"partitions": "3,1"}, 30).partitions == [3, 1]
    assert params.lease_ttl({"ttl": "0"}) == 0
    with pytest.raises(InvalidRequest) as raised:
        params.lease_ttl({})
    assert errors_of(raised) == {"ttl": "Required"}


def test_message_ids_default_to_partition_1_and_come_once() -> None:
    assert params.message_ids(f"{ID}, 2:{ID.upper()},{ID}", 200) == [(1, ID), (2, ID)]
    for bad in ("", "nope", f"201:{ID}", f"0:{ID}"):
        with pytest.raises(InvalidMessageID):
            params.message_ids(bad, 200)
