"""Typed parsers of request parameters (query strings, forms, JSON objects).

Each parser reads every field, reports every bad one at once (:class:`InvalidRequest`, in the
original Queuey's words) and otherwise returns values of the fields' types."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from queuey.core.errors import InvalidMessageID
from queuey.core.ids import ticks_from_timestamp, ticks_of
from queuey.core.limits import (
    MAX_CLAIM_LIMIT,
    MAX_CLAIM_TTL,
    MAX_DEDUP_ID,
    MAX_DEDUP_WINDOW,
    MAX_DELIVERIES,
    MAX_PRINCIPLES,
    MAX_WAIT,
    Limits,
)
from queuey.core.models import (
    CONSISTENCIES,
    DELIVERIES,
    POLICIES,
    QUEUE_TYPES,
    Cursor,
    QueueSettings,
)
from queuey.core.validation import Errors, comma_items
from queuey.service.rights import valid_name

_PRINCIPLE = re.compile(r"app:[A-Za-z0-9_.-]{1,64}|user:[^\s,:]{1,256}|bid:[^\s,@]+@[^\s,@]+")
_ID_ITEM = re.compile(r"(?:(\d{1,3}):)?([0-9A-Fa-f]{32})")
QUEUE_PARAMS = frozenset(
    {
        "queue_name", "partitions", "type", "consistency", "principles",
        "delivery", "claim_ttl", "max_deliveries", "dead_letter_queue", "delay",
        "dedup_window", "policy", "paused",
    }
)  # fmt: skip


# --- queues -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListParams:
    """A queue listing: names from ``offset`` (inclusive), or whole queues with ``details``,
    with their live counts with ``include_count``."""

    offset: str | None
    limit: int
    details: bool
    include_count: bool


def list_params(params: Mapping[str, str], limits: Limits) -> ListParams:
    errors = Errors()
    limit = errors.integer(
        "limit", params.get("limit"), limits.default_list_limit, 1, limits.max_list_limit
    )
    details = errors.boolean("details", params.get("details"), False)
    include_count = errors.boolean("include_count", params.get("include_count"), False)
    errors.raise_if_any()
    return ListParams(params.get("offset") or None, limit, details, include_count)


def new_queue(params: Mapping[str, object], limits: Limits) -> tuple[str, QueueSettings]:
    """The name (a random one when none is given) and settings of a queue to create."""
    errors = Errors()
    reject_unknown(errors, params, QUEUE_PARAMS)
    name = params.get("queue_name") or uuid.uuid4().hex
    if not isinstance(name, str) or not valid_name(name, limits.max_name_length):
        errors["queue_name"] = (
            f"{name!r} is not a valid queue name: 1 to {limits.max_name_length} "
            "characters of A-Z a-z 0-9 _ . -"
        )
        name = ""
    settings = _settings(errors, params, QueueSettings(), limits)
    errors.raise_if_any()
    return name, settings


def same_given_settings(
    params: Mapping[str, object], wanted: QueueSettings, current: QueueSettings
) -> bool:
    """Whether each setting ``params`` gives (``wanted``, as parsed from them) equals
    ``current``'s; principles are a set."""
    for name in (f.name for f in fields(QueueSettings) if f.name in params):
        mine, theirs = getattr(wanted, name), getattr(current, name)
        if name == "principles":
            mine, theirs = set(mine), set(theirs)
        if mine != theirs:
            return False
    return True


def queue_update(
    params: Mapping[str, object], current: QueueSettings, limits: Limits
) -> QueueSettings:
    """``current`` with the parameters that were sent applied."""
    errors = Errors()
    reject_unknown(errors, params, QUEUE_PARAMS - {"queue_name"})
    settings = _settings(errors, params, current, limits)
    errors.raise_if_any()
    return settings


def _settings(
    errors: Errors, params: Mapping[str, object], current: QueueSettings, limits: Limits
) -> QueueSettings:
    get = params.get
    partitions = errors.integer(
        "partitions", get("partitions"), current.partitions, 1, limits.max_partitions
    )
    queue_type = errors.choice("type", get("type"), QUEUE_TYPES, current.type)
    consistency = errors.choice(
        "consistency", get("consistency"), CONSISTENCIES, current.consistency
    )
    principles = current.principles
    if "principles" in params:
        principles = _principles(errors, params["principles"])
    delivery = errors.choice("delivery", get("delivery"), DELIVERIES, current.delivery)
    claim_ttl = errors.integer("claim_ttl", get("claim_ttl"), current.claim_ttl, 1, MAX_CLAIM_TTL)
    max_deliveries = errors.integer(
        "max_deliveries", get("max_deliveries"), current.max_deliveries, 0, MAX_DELIVERIES
    )
    delay = errors.integer("delay", get("delay"), current.delay, 0, limits.max_ttl)
    dedup_window = errors.integer(
        "dedup_window", get("dedup_window"), current.dedup_window, 0, MAX_DEDUP_WINDOW
    )
    policy = errors.choice("policy", get("policy"), POLICIES, current.policy)
    paused = errors.boolean("paused", get("paused"), current.paused)
    dead_letter_queue = current.dead_letter_queue
    if "dead_letter_queue" in params:
        value = params["dead_letter_queue"]
        if value is None or value == "":
            dead_letter_queue = None
        elif isinstance(value, str) and valid_name(value, limits.max_name_length):
            dead_letter_queue = value
        else:
            errors["dead_letter_queue"] = f"{value!r} is not a valid queue name"
    return replace(
        current,
        partitions=partitions,
        type=queue_type,
        consistency=consistency,
        principles=principles,
        delivery=delivery,
        claim_ttl=claim_ttl,
        max_deliveries=max_deliveries,
        dead_letter_queue=dead_letter_queue,
        delay=delay,
        dedup_window=dedup_window,
        policy=policy,
        paused=paused,
    )


def reject_unknown(errors: Errors, params: Mapping[str, object], known: frozenset[str]) -> None:
    for key in params:
        if key not in known:
            errors[key] = f"Unknown parameter; expected one of {', '.join(sorted(known))}"


def _too_many(errors: Errors, field: str, items: list[str], most: int) -> bool:
    """Whether a list has more than ``most`` items (recorded as the field's error)."""
    if len(items) <= most:
        return False
    errors[field] = f"{len(items)} {field} is more than the maximum of {most}"
    return True


def _principles(errors: Errors, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, str):
        errors["principles"] = f"{value!r} is not a valid permission list."
        return ()
    items = comma_items(value)
    if _too_many(errors, "principles", items, MAX_PRINCIPLES):
        return ()
    for item in items:
        if not _PRINCIPLE.fullmatch(item):
            errors["principles"] = f"{item!r} is not a valid permission list."
            return ()
    return tuple(dict.fromkeys(items))


# --- reads --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadParams:
    limit: int
    descending: bool
    partitions: list[int]
    cursor: Cursor | None
    wait: int  # seconds to wait for a message when there is none


def read_params(params: Mapping[str, str], limits: Limits) -> ReadParams:
    errors = Errors()
    limit = errors.integer(
        "limit", params.get("limit"), limits.default_read_limit, 1, limits.max_read_limit
    )
    order = errors.choice("order", params.get("order"), ("ascending", "descending"), "ascending")
    descending = order == "descending"
    partitions = _partition_list(errors, params.get("partitions"), limits.max_partitions)
    cursor = _cursor(errors, params.get("since"), params.get("after"), descending)
    wait = errors.integer("wait", params.get("wait"), 0, 0, MAX_WAIT)
    errors.raise_if_any()
    return ReadParams(limit, descending, partitions, cursor, wait)


def _partition_list(errors: Errors, value: str | None, max_partitions: int) -> list[int]:
    """Partition numbers, each once, in the order given; no list can usefully name more than
    ``max_partitions`` of them."""
    if value is None:
        return [1]
    items = comma_items(value)
    if _too_many(errors, "partitions", items, max_partitions):
        return []
    for item in items:
        if not item.isascii() or not item.isdigit() or len(item) > 9:
            errors["partitions"] = (
                f'"{value}" is not a valid comma separated list of integers or a single integer.'
            )
            return []
    return list(dict.fromkeys(map(int, items)))


def _cursor(
    errors: Errors, since: str | None, after: str | None, descending: bool
) -> Cursor | None:
    """``since`` (a timestamp or an id, inclusive) or ``after`` (an id, exclusive)."""
    if since and after:
        errors["after"] = "since and after cannot be used together"
        return None
    if after:
        ticks = ticks_of(after.lower())
        if ticks is None:
            errors["after"] = f'"{after}" is not a message id'
            return None
        return Cursor(ticks, after.lower(), inclusive=False)
    if not since:
        return None
    ticks = ticks_of(since.lower())
    if ticks is not None:
        return Cursor(ticks, since.lower(), inclusive=True)
    ticks = ticks_from_timestamp(since)
    if ticks is None:
        errors["since"] = f'"{since}" is not a timestamp or a message id'
        return None
    if ticks_from_timestamp("0") == ticks:
        return None  # since=0 means "from the start", as in the original
    return Cursor(ticks, "~" if descending else "", inclusive=True)


def message_ids(text: str, max_partitions: int) -> list[tuple[int, str]]:
    """``[partition:]<32 hex>`` items separated by commas, each once; partition 1 by default."""
    pairs: dict[tuple[int, str], None] = {}
    for item in comma_items(text):
        match = _ID_ITEM.fullmatch(item)
        if match is None:
            raise InvalidMessageID()
        partition = int(match.group(1) or 1)
        message_id = match.group(2).lower()
        if not 1 <= partition <= max_partitions or ticks_of(message_id) is None:
            raise InvalidMessageID()
        pairs[partition, message_id] = None
    if not pairs:
        raise InvalidMessageID()
    return list(pairs)


def dedup_id(errors: Errors, field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_DEDUP_ID:
        errors[field] = f"{value!r} is not a string of 1 to {MAX_DEDUP_ID} characters"
        return None
    return value


# --- claims -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimParams:
    limit: int
    ttl: int  # seconds of the lease
    wait: int
    partitions: list[int] | None  # None: every partition of the queue


def claim_params(params: Mapping[str, object], claim_ttl: int, limits: Limits) -> ClaimParams:
    """A claim's parameters; ``claim_ttl`` is the queue's default lease."""
    errors = Errors()
    limit = errors.integer("limit", params.get("limit"), 1, 1, MAX_CLAIM_LIMIT)
    ttl = errors.integer("ttl", params.get("ttl"), claim_ttl, 1, MAX_CLAIM_TTL)
    wait = errors.integer("wait", params.get("wait"), 0, 0, MAX_WAIT)
    chosen: list[int] | None = None
    if params.get("partitions") not in (None, ""):
        chosen = _partition_list(errors, str(params["partitions"]), limits.max_partitions)
    errors.raise_if_any()
    return ClaimParams(limit, ttl, wait, chosen)


def lease_ttl(params: Mapping[str, object]) -> int:
    """The ``ttl`` of an extension: seconds more from now, 0 releasing the claim."""
    errors = Errors()
    ttl = errors.required_integer("ttl", params.get("ttl"), 0, MAX_CLAIM_TTL)
    errors.raise_if_any()
    return ttl
