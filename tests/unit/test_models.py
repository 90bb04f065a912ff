"""Messages are values: frozen, compared and hashed by their fields, changed by copying."""

from __future__ import annotations

import dataclasses

import pytest

from queuey.core.models import Message


def test_a_message_cannot_be_changed_in_place() -> None:
    message = Message("0" * 32, 1, 2, "body", "text/plain", 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.body = "other"  # type: ignore[misc]
    assert message.body == "body"


def test_a_changed_copy_keeps_the_other_fields() -> None:
    message = Message("0" * 32, 1, 2, "body", "text/plain", 5, due_ms=3)
    copy = dataclasses.replace(message, deliveries=1)
    assert copy == Message(
        id="0" * 32, ticks=1, partition=2, body="body", content_type="text/plain",
        expires_ms=5, due_ms=3, deliveries=1,
    )  # fmt: skip
    assert message.deliveries == 0
    assert hash(copy) == hash(dataclasses.replace(message, deliveries=1))
    assert copy != message
