"""Claim ids: the opaque handle a consumer gets for a claim and hands back to ack or extend it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from queuey.core.errors import ClaimExpired, InvalidRequest
from queuey.core.ids import ticks_of
from queuey.core.models import Claim, ClaimRef, Queue
from queuey.core.validation import comma_items

_CLAIM_ID = re.compile(r"[0-9a-f]{50}")


def claim_id(claim: Claim) -> str:
    """The opaque id of a claim: message id, partition and token, 50 hex digits."""
    message = claim.message
    return f"{message.id}{message.partition:02x}{claim.token:016x}"


def parse_claim_ids(text: str) -> tuple[list[str], list[ClaimRef]]:
    """Comma-separated claim ids (see :func:`claim_id`), each once. Text that is not a claim
    id is a 400; an id of a partition or token no claim has is parsed (it is never current)."""
    refs: dict[str, ClaimRef] = {}
    for item in comma_items(text.lower()):
        message_id = item[:32]
        if not _CLAIM_ID.fullmatch(item) or ticks_of(message_id) is None:
            raise InvalidRequest({"claim_ids": f'"{item}" is not a claim id'})
        refs[item] = ClaimRef(int(item[32:34], 16), message_id, int(item[34:], 16))
    if not refs:
        raise InvalidRequest({"claim_ids": "Required"})
    return list(refs), list(refs.values())


async def settle_claims(
    queue: Queue, refs: list[ClaimRef], apply: Callable[[list[ClaimRef]], Awaitable[list[bool]]]
) -> list[bool]:
    """Per claim, whether ``apply`` (an ack or an extension) found it current. Only the claims
    ``queue`` could hold reach the back-end: a forged partition or token is not current."""
    possible = [ref.could_be_of(queue) for ref in refs]
    chosen = [ref for ref, ok in zip(refs, possible, strict=True) if ok]
    found = iter(await apply(chosen) if chosen else [])
    return [ok and next(found) for ok in possible]


def all_current(items: list[str], done: list[bool], verb: str) -> list[str]:
    """The claim ids that were current; ClaimExpired if any was not."""
    ok = [item for item, current in zip(items, done, strict=True) if current]
    if len(ok) < len(items):
        failed = [item for item, current in zip(items, done, strict=True) if not current]
        raise ClaimExpired({verb: ok, "failed": failed})
    return ok
