"""Queue maintenance: purge a queue, and redrive a dead-letter queue's messages back.

A redrive moves each message by writing a copy to the target (a new id, see
:meth:`MessageFactory.redriven`) with a dedup id made of the dead letter's own id, remembered
there for as long as the message lives, and only then deleting it from the dead-letter queue. A
call that is interrupted between the two steps, or repeated, writes nothing twice: the target
already remembers the message, and the move only finishes the delete. So a message is moved
exactly once, even when the target's consumers took it in the meantime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from queuey.core.models import Message, Queue
from queuey.core.validation import Errors
from queuey.service.params import reject_unknown
from queuey.service.rights import valid_name
from queuey.storage.base import Storage

REDRIVE_PARAMS = frozenset({"to", "limit"})
REDRIVE_BATCH = 100  # messages moved per round trip


@dataclass(frozen=True, slots=True)
class RedriveParams:
    to: str | None  # None: the queue whose dead letters these are
    limit: int | None  # None: every message


def redrive_params(params: Mapping[str, object], max_name_length: int) -> RedriveParams:
    errors = Errors()
    reject_unknown(errors, params, REDRIVE_PARAMS)
    limit = None
    if params.get("limit") not in (None, ""):
        limit = errors.required_integer("limit", params.get("limit"), 1)
    to = params.get("to") or None
    if to is not None and (not isinstance(to, str) or not valid_name(to, max_name_length)):
        errors["to"] = f"{to!r} is not a valid queue name"
    errors.raise_if_any()
    return RedriveParams(to if isinstance(to, str) else None, limit)


async def redrive_target(storage: Storage, source: Queue, to: str | None) -> Queue:
    """The queue a redrive of ``source`` moves messages to.

    Raises:
        InvalidRequest (``to``): it is not an existing queue of the application other than the
            source, or, not given, no single queue sends its dead letters to the source.
    """
    errors = Errors()
    if to is not None:
        target = await storage.get_queue(source.app, to)
        if target is None or target.name == source.name:
            errors["to"] = f"{to!r} is not another queue of application {source.app}"
            errors.raise_if_any()
        assert target is not None
        return target
    senders = await storage.dead_letter_senders(source.app, source.name)
    if len(senders) != 1:
        errors["to"] = (
            "Required: no queue sends its dead letters here"
            if not senders
            else f"Required: several queues send their dead letters here ({', '.join(senders)})"
        )
        errors.raise_if_any()
    target = await storage.get_queue(source.app, senders[0])
    if target is None:
        errors["to"] = f"{senders[0]!r} was deleted"
        errors.raise_if_any()
    assert target is not None
    return target


def redrive_dedup_id(message: Message) -> str:
    return f"redrive:{message.partition}:{message.id}"
