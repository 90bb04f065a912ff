"""Rights: which caller may do what to which application's queues."""

from __future__ import annotations

import re
from collections.abc import Collection
from enum import Enum

from queuey.core.errors import ApplicationNotFound, Forbidden, QueueNotFound, Unauthorized
from queuey.core.models import Caller, Queue
from queuey.storage.base import Storage

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def valid_name(name: str, max_length: int) -> bool:
    """Whether ``name`` can name a queue: 1 to ``max_length`` characters of A-Z a-z 0-9 _ . -"""
    return len(name) <= max_length and _NAME.fullmatch(name) is not None


class Right(Enum):
    """What a request needs on a queue: owners hold every right. The value is the name of
    the right in a token (``None``: no token holds it)."""

    OWNER = None  # update, delete, purge, redrive the queue, overwrite messages
    POST = "post"  # post messages (owner only, or a token listing it)
    READ = "read"  # read messages (public queues: anyone)
    DELETE = "delete"  # delete messages (principals too)
    CLAIM = "claim"  # claim, ack, extend (principals too)
    STATS = "stats"  # a queue's stats (principals too)
    STREAM = "stream"  # open a stream (principals too)


# What a principal listed in a queue's ``principles`` may do there.
PRINCIPAL = frozenset({Right.READ, Right.DELETE, Right.CLAIM, Right.STATS, Right.STREAM})


class Rights:
    def __init__(self, storage: Storage, applications: Collection[str], max_name_length: int):
        self._storage = storage
        self._applications = frozenset(applications)
        self._max_name_length = max_name_length

    def check_application(self, app: str) -> None:
        if app not in self._applications:
            raise ApplicationNotFound()

    def require_owner(self, caller: Caller, app: str) -> None:
        self.check_application(app)
        if caller.app is None and caller.grant is None:
            raise Unauthorized()
        if caller.app != app:
            raise Forbidden()

    async def queue(self, caller: Caller, app: str, name: str, right: Right) -> Queue:
        """The queue, if ``caller`` holds ``right`` on it. Callers without any right learn
        nothing about whether the queue exists: they get 401/403 either way."""
        self.check_application(app)
        exists = valid_name(name, self._max_name_length)
        queue = await self._storage.get_queue(app, name) if exists else None
        if caller.app == app:
            if queue is None:
                raise QueueNotFound()
            return queue
        grant = caller.grant
        if grant and grant.app == app and right.value in grant.rights and grant.names(name):
            if queue is None:
                raise QueueNotFound()
            return queue
        if queue is not None and right in PRINCIPAL:
            if right is Right.READ and queue.settings.type == "public":
                return queue
            principal = f"app:{caller.app}" if grant is None else grant.subject
            if (caller.app or grant) and principal in queue.settings.principles:
                return queue
        if caller.app is None and grant is None:
            raise Unauthorized()
        raise Forbidden()
