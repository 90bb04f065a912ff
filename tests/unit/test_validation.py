from __future__ import annotations

import pytest

from queuey.core.errors import InvalidRequest
from queuey.core.validation import Errors, check_bool, check_choice, check_int


def test_integers_in_the_original_words() -> None:
    errors = Errors()
    assert check_int(errors, "a", "7", None, 1, 10) == 7
    assert check_int(errors, "b", 3, None, 1, 10) == 3
    assert check_int(errors, "c", None, 5) == 5
    assert check_int(errors, "d", "", 5) == 5
    assert not errors
    check_int(errors, "ttl", None, None)
    check_int(errors, "x", "fred", None)
    check_int(errors, "y", "-1", None, 0)
    check_int(errors, "z", 4, None, 1, 1)
    check_int(errors, "t", True, None)
    check_int(errors, "f", 3.5, None)
    assert errors == {
        "ttl": "Required",
        "x": '"fred" is not a number',
        "y": "-1 is less than minimum value 0",
        "z": "4 is greater than maximum value 1",
        "t": '"True" is not a number',
        "f": '"3.5" is not a number',
    }
    with pytest.raises(InvalidRequest) as raised:
        errors.raise_if_any()
    assert raised.value.errors == errors


def test_booleans_accept_six_words_in_any_case() -> None:
    errors = Errors()
    for word, value in (("TRUE", True), ("1", True), ("Yes", True), ("false", False),
                        ("0", False), ("NO", False)):  # fmt: skip
        assert check_bool(errors, "b", word, not value) is value
    assert not errors
    check_bool(errors, "b", "off", False)
    assert errors == {"b": '"off" is not one of true, false, 1, 0, yes, no'}


def test_choices() -> None:
    errors = Errors()
    assert check_choice(errors, "o", None, ("a", "b"), "a") == "a"
    assert check_choice(errors, "o", "x", ("a", "b"), "a") is None
    assert errors == {"o": '"x" is not one of a, b'}


def test_integers_of_other_digits_or_thousands_of_digits_are_errors_not_crashes() -> None:
    errors = Errors()
    assert check_int(errors, "a", " +007 ", None, 1, 10) == 7
    assert not errors
    check_int(errors, "sup", "²", None, 1, 10)  # str.isdigit() is true, int() refuses it
    check_int(errors, "arabic", "\u0661", None, 1, 10)
    check_int(errors, "huge", "9" * 5000, None, 1, 10)  # int() refuses over 4300 digits
    check_int(errors, "tiny", "-" + "9" * 5000, None, 1, 10)
    check_int(errors, "unbounded", "9" * 40, None)
    assert errors == {
        "sup": '"²" is not a number',
        "arabic": '"\u0661" is not a number',
        "huge": "9" * 30 + "... is greater than maximum value 10",
        "tiny": "-" + "9" * 30 + "... is less than minimum value 1",
        "unbounded": f'"{"9" * 40}" is not a number',
    }
