"""The RestMQ front end (api.md Part 4, reference/restmq.md): RestMQ's REST routes and JSON
protocol over the queues of one application.

A pop (``GET /q/<queue>``, ``take``) is a claim acknowledged at once: at most once, as RestMQ
did. ``get`` is a peek that counts reads: a claim released at once, so every ``get`` shows the
oldest available message with its read count. Keys are ``<queue>:<message id>``. Queues are
created on first use; a queue that does not exist yet reads as the empty, started, broadcast
queue it will be. Start and stop resume and pause the queue (its claims and streams).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import falcon.asgi
import orjson

from queuey.api import requests, responses
from queuey.api.frontend import (
    Access,
    Mount,
    all_queues,
    install_errors,
    on_first_use,
    queue_with_count,
)
from queuey.api.restmq_consumers import (
    COMET_MEDIA_TYPE,
    SOCKET_PREFIX,
    CometFraming,
    CometStream,
    Consumers,
    ConsumerSocket,
    key,
)
from queuey.core.errors import InvalidRequest, QueueNotFound
from queuey.core.models import Caller, Claim, Message, Queue
from queuey.service import QueueService, claim_id
from queuey.streams import End

Request = falcon.asgi.Request
Response = falcon.asgi.Response
T = TypeVar("T")

STATUSES = {"start": False, "stop": True}  # status -> the queue's ``paused``
MALFORMED = "Malformed JSON. Invalid format."


class RestMQ:
    """The front end, serving the queues of ``access.application``."""

    def __init__(self, service: QueueService, access: Access) -> None:
        self.service = service
        self.access = access
        self.app = access.application

    def install(self, mount: Mount) -> None:
        install_errors(mount.app)
        consumers = Consumers(self.service, mount.streams, self.app)
        for template, route in [
            ("/q/{queue}", QueueRoute(self)),
            ("/c/{queue}", CometRoute(self, consumers)),
            ("/p/{queue}", PolicyRoute(self)),
            ("/control", ControlsRoute(self)),
            ("/control/{queue}", ControlRoute(self)),
            ("/stats", AllStatsRoute(self)),
            ("/stats/{queue}", StatsRoute(self)),
            ("/queue", JsonProtocolRoute(self)),
        ]:
            mount.route(template, route, self.app)
        mount.socket(SOCKET_PREFIX, ConsumerSocket(consumers, self.access))

    async def use(
        self,
        caller: Caller,
        queue: str,
        call: Callable[[Caller, str, str], Awaitable[T]],
        **settings: str,
    ) -> T:
        """``call(caller, application, queue)``, creating the queue on first use."""
        return await on_first_use(self.service, caller, self.app, queue, call, settings)

    async def add(self, caller: Caller, queue: str, value: str, ttl: object) -> Message:
        body = value.encode("utf-8")
        ttl_text = None if ttl is None else str(ttl)
        posted, _ = await self.use(
            caller,
            queue,
            lambda caller, app, name: self.service.post_raw(
                caller, app, name, body, "text/plain", ttl_text, None
            ),
        )
        return posted[0]

    async def pop(self, caller: Caller, queue: str) -> Claim | None:
        """The oldest available message, taken off the queue (at most once)."""
        claim = await self._claim(caller, queue)
        if claim is not None:
            await self.service.ack(caller, self.app, queue, claim_id(claim))
        return claim

    async def peek(self, caller: Caller, queue: str) -> Claim | None:
        """The oldest available message, left available, its read counted."""
        claim = await self._claim(caller, queue)
        if claim is not None:
            await self.service.extend(caller, self.app, queue, claim_id(claim), {"ttl": 0})
        return claim

    async def _claim(self, caller: Caller, queue: str) -> Claim | None:
        try:
            claims = await self.service.claim(caller, self.app, queue, {"limit": 1})
        except QueueNotFound:
            return None
        return claims[0] if claims else None

    async def change(self, caller: Caller, queue: str, **settings: str) -> Queue:
        return await self.use(
            caller,
            queue,
            lambda caller, app, name: self.service.update_queue(caller, app, name, settings),
            **settings,
        )

    async def find(self, caller: Caller, queue: str) -> dict[str, Any]:
        """``queue``'s length, status and policy."""
        found = await queue_with_count(self.service, caller, self.app, queue)
        return _state(*(found or (None, 0)))


class Route:
    def __init__(self, restmq: RestMQ) -> None:
        self.restmq = restmq
        self.service = restmq.service

    def caller(self, req: Request) -> Caller:
        return self.restmq.access.caller(req)

    async def params(self, req: Request) -> dict[str, object]:
        """Parameters from the query string and the form body, as RestMQ read them."""
        return await requests.params(req, self.service.limits.max_batch_bytes)


class QueueRoute(Route):
    async def on_get(self, req: Request, resp: Response, queue: str) -> None:
        claim = await self.restmq.pop(self.caller(req), queue)
        if claim is None:
            resp.status = 204
            return
        message = claim.message
        responses.ok(
            resp,
            {"key": key(queue, message), "value": message.body, "count": message.deliveries - 1},
        )

    async def on_post(self, req: Request, resp: Response, queue: str) -> None:
        caller = self.caller(req)
        params = await self.params(req)
        value = params.get("value") or params.get("msg")
        if not isinstance(value, str) or not value:
            raise InvalidRequest({"value": "Required (value or msg)"})
        message = await self.restmq.add(caller, queue, value, params.get("ttl"))
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = key(queue, message) + "\r\n"

    async def on_delete(self, req: Request, resp: Response, queue: str) -> None:
        """End the queue's consumers, through every server process, and purge the queue
        (ended first: what they were not sent is purged too, not given back)."""
        caller = self.caller(req)
        try:
            await self.service.end_consumers(caller, self.restmq.app, queue)
            purged = await self.service.purge(caller, self.restmq.app, queue)
        except QueueNotFound:
            purged = 0
        responses.ok(resp, {"queue": queue, "status": int(purged > 0), "purged": purged})


class CometRoute(Route):
    """``GET /c/<queue>``: a COMET consumer (:mod:`queuey.api.restmq_consumers`)."""

    def __init__(self, restmq: RestMQ, consumers: Consumers) -> None:
        super().__init__(restmq)
        self.consumers = consumers

    async def on_get(self, req: Request, resp: Response, queue: str) -> None:
        consumer = await self.consumers.bind(self.caller(req), queue, CometFraming(queue))
        resp.content_type = COMET_MEDIA_TYPE
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")  # nginx: pass each line on at once
        # The server's shutdown ends the stream (queuey.server.QueueyHttpProtocol.shutdown).
        req.scope["queuey.end_stream"] = lambda: consumer.subscriber.end(End.SHUTDOWN)
        resp.stream = CometStream(consumer, req.scope["queuey.receive"])


class PolicyRoute(Route):
    async def on_get(self, req: Request, resp: Response, queue: str) -> None:
        state = await self.restmq.find(self.caller(req), queue)
        responses.ok(resp, {"queue": queue, "value": state["policy"]})

    on_head = on_get

    async def on_post(self, req: Request, resp: Response, queue: str) -> None:
        caller = self.caller(req)
        policy = _required(await self.params(req), "policy")
        changed = await self.restmq.change(caller, queue, policy=policy)
        responses.ok(resp, {"queue": queue, "value": changed.settings.policy})


class ControlRoute(Route):
    async def on_get(self, req: Request, resp: Response, queue: str) -> None:
        state = await self.restmq.find(self.caller(req), queue)
        responses.ok(resp, {"queue": queue, "status": _status(queue, state)})

    on_head = on_get

    async def on_post(self, req: Request, resp: Response, queue: str) -> None:
        caller = self.caller(req)
        status = _required(await self.params(req), "status")
        if status not in STATUSES:
            raise InvalidRequest({"status": f"invalid status: {status} (start or stop)"})
        paused = "true" if STATUSES[status] else "false"
        changed = await self.restmq.change(caller, queue, paused=paused)
        responses.ok(resp, {"stat": {"queue": queue, "status": int(not changed.settings.paused)}})


class ControlsRoute(Route):
    async def on_get(self, req: Request, resp: Response) -> None:
        found = await all_queues(self.service, self.caller(req), self.restmq.app)
        statuses = {q.name: _status(q.name, _state(q, count)) for q, count in found}
        responses.ok(resp, {"queues": statuses, "count": len(statuses)})

    on_head = on_get


class StatsRoute(Route):
    async def on_get(self, req: Request, resp: Response, queue: str) -> None:
        state = await self.restmq.find(self.caller(req), queue)
        responses.ok(resp, {"queue": queue, **state})

    on_head = on_get


class AllStatsRoute(Route):
    async def on_get(self, req: Request, resp: Response) -> None:
        found = await all_queues(self.service, self.caller(req), self.restmq.app)
        queues = {q.name: {"name": q.name, **_state(q, count)} for q, count in found}
        responses.ok(resp, {"queues": queues, "count": len(queues)})

    on_head = on_get


class JsonProtocolRoute(Route):
    """``POST /queue``: a JSON command in the form field ``body`` (or ``msg``)."""

    async def on_post(self, req: Request, resp: Response) -> None:
        caller = self.caller(req)
        params = await self.params(req)
        command = _command(params.get("body") or params.get("msg"))
        queue = command.get("queue")
        if not isinstance(queue, str) or not queue:
            raise InvalidRequest({"queue": "Required"})
        run = _COMMANDS.get(str(command["cmd"]))
        if run is None:
            raise InvalidRequest({"cmd": f"{command['cmd']!r} is not add, get, take or del"})
        responses.ok(resp, await run(self, caller, queue, command))

    async def add(self, caller: Caller, queue: str, command: Mapping[str, object]) -> JsonObject:
        value = command.get("value")
        if not isinstance(value, str) or not value:
            raise InvalidRequest({"value": "Required: a string"})
        message = await self.restmq.add(caller, queue, value, command.get("ttl"))
        return {"queue": queue, "value": value, "key": key(queue, message)}

    async def get(self, caller: Caller, queue: str, command: Mapping[str, object]) -> JsonObject:
        claim = await self.restmq.peek(caller, queue)
        if claim is None:
            return {"error": "empty queue"}
        found = _found(queue, claim.message)
        return {**found, "count": claim.message.deliveries}

    async def take(self, caller: Caller, queue: str, command: Mapping[str, object]) -> JsonObject:
        claim = await self.restmq.pop(caller, queue)
        return {"error": "empty queue"} if claim is None else _found(queue, claim.message)

    async def delete(self, caller: Caller, queue: str, command: Mapping[str, object]) -> JsonObject:
        text = command.get("key")
        message_id = _message_id(queue, text)
        deleted = False
        found = await queue_with_count(self.service, caller, self.restmq.app, queue)
        if found is not None:
            ids = ",".join(f"{p}:{message_id}" for p in range(1, found[0].partitions + 1))
            deleted = bool(await self.service.get_messages(caller, self.restmq.app, queue, ids))
            await self.service.delete_messages(caller, self.restmq.app, queue, ids)
        return {"queue": queue, "deleted": deleted, "key": text}


JsonObject = dict[str, object]
_Command = Callable[[JsonProtocolRoute, Caller, str, Mapping[str, object]], Awaitable[JsonObject]]
_COMMANDS: dict[str, _Command] = {
    "add": JsonProtocolRoute.add,
    "get": JsonProtocolRoute.get,
    "take": JsonProtocolRoute.take,
    "del": JsonProtocolRoute.delete,
}


def _message_id(queue: str, text: object) -> str:
    prefix, _, message_id = text.strip().rpartition(":") if isinstance(text, str) else ("", "", "")
    if prefix != queue or len(message_id) != 32:
        raise InvalidRequest({"key": f"{text!r} is not a key of queue {queue!r} ({queue}:<id>)"})
    return message_id.lower()


def _found(queue: str, message: Message) -> JsonObject:
    return {"queue": queue, "value": message.body, "key": key(queue, message)}


def _state(queue: Queue | None, count: int) -> dict[str, Any]:
    paused = queue is not None and queue.settings.paused
    policy = "broadcast" if queue is None else queue.settings.policy
    return {"len": count, "status": int(not paused), "policy": policy}


def _status(queue: str, state: Mapping[str, Any]) -> dict[str, Any]:
    return {"queue": queue, "status": state["status"]}


def _required(params: Mapping[str, object], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest({name: "Required"})
    return value


def _command(text: object) -> dict[str, object]:
    if not isinstance(text, str) or not text:
        raise InvalidRequest({"body": "Required: a JSON command in the form field body"})
    try:
        command = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRequest({"body": MALFORMED}) from None
    if not isinstance(command, dict) or "cmd" not in command:
        raise InvalidRequest({"body": MALFORMED})
    return command
