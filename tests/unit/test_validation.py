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
