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
        nothing about whether the queue exists: they get 401/403 either way, after the same
        look-up and the same checks (against a stand-in when there is no queue), so that the
        time of the refusal does not tell either."""
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
        if grants(caller, queue or _NO_QUEUE, right) and queue is not None:
            return queue
        if caller.app is None and grant is None:
            raise Unauthorized()
        raise Forbidden()


# What another application's or an anonymous request is checked against when there is no queue.
_NO_QUEUE = Queue("", "", 0, 0.0)


def grants(caller: Caller, queue: Queue, right: Right) -> bool:
    """Whether ``queue`` gives ``right`` to ``caller``, who is not its owner: reads of a public
    queue to anyone; the PRINCIPAL rights to the principals it lists (another application, or
    a token's subject)."""
    if right not in PRINCIPAL:
        return False
    if right is Right.READ and queue.settings.type == "public":
        return True
    grant = caller.grant
    principal = f"app:{caller.app}" if grant is None else grant.subject
    return bool(caller.app or grant) and principal in queue.settings.principles
