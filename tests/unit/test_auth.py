from __future__ import annotations

import pytest

from queuey.api.auth import ANONYMOUS, KeyRing
from queuey.core.errors import InvalidApplicationKey
from queuey.core.models import Caller

RING = KeyRing({"one": ("k1", "k2"), "two": ("acid",)})


def test_every_key_of_an_application_names_it() -> None:
    assert RING.caller("Application k1") == Caller("one")
    assert RING.caller("Application k2") == Caller("one")
    assert RING.caller("application acid") == Caller("two")


def test_no_header_or_other_schemes_are_anonymous() -> None:
    assert RING.caller(None) is ANONYMOUS
    assert RING.caller("") is ANONYMOUS
    assert RING.caller("Basic abc; Bearer xyz") is ANONYMOUS


def test_unknown_keys_raise_even_beside_a_good_one() -> None:
    for header in ("Application nope", "Application k1; Application nope", "Application "):
        with pytest.raises(InvalidApplicationKey):
            RING.caller(header)


def test_first_valid_credential_wins() -> None:
    assert RING.caller("Basic x;Application acid; Application k1") == Caller("two")
