"""Claim ids: the opaque handle a consumer gets for a claim and hands back to ack or extend it."""

from __future__ import annotations

import re

from queuey.core.errors import ClaimExpired, InvalidRequest
from queuey.core.ids import ticks_of
from queuey.core.models import Claim, ClaimRef

_CLAIM_ID = re.compile(r"[0-9a-f]{50}")


def claim_id(claim: Claim) -> str:
    """The opaque id of a claim: message id, partition and token, 50 hex digits."""
    message = claim.message
    return f"{message.id}{message.partition:02x}{claim.token:016x}"


def parse_claim_ids(text: str) -> tuple[list[str], list[ClaimRef]]:
    """Comma-separated claim ids (see :func:`claim_id`), each once."""
    items: list[str] = []
    refs: list[ClaimRef] = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item or item in items:
            continue
        message_id = item[:32]
        if not _CLAIM_ID.fullmatch(item) or ticks_of(message_id) is None:
            raise InvalidRequest({"claim_ids": f'"{item}" is not a claim id'})
        items.append(item)
        refs.append(ClaimRef(int(item[32:34], 16), message_id, int(item[34:], 16)))
    if not items:
        raise InvalidRequest({"claim_ids": "Required"})
    return items, refs


def all_current(items: list[str], done: list[bool], verb: str) -> list[str]:
    """The claim ids that were current; ClaimExpired if any was not."""
    ok = [item for item, current in zip(items, done, strict=True) if current]
    if len(ok) < len(items):
        failed = [item for item, current in zip(items, done, strict=True) if not current]
        raise ClaimExpired({verb: ok, "failed": failed})
    return ok
