"""Tenant isolation: every route and method × every kind of caller gets exactly the status
api.md gives, changes nothing it has no right to, and never sees another application's queue
names or messages.

A new route is a row of MATRIX (method, path template, request body, expected statuses);
``test_the_matrix_covers_every_route_of_the_app`` fails until it has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest

from tests.api.conftest import AUTH, FORM, OTHER_AUTH, THIRD_AUTH, Api
from tests.api.test_openapi import app_operations

# Distinctive markers: the other application's must never show, the owner's only to callers
# with a right on the queue.
OWNER_QUEUE = "ownerqueue-7c1d"
OWNER_BODY = "owner-secret-body-5e2a"
PUBLIC_QUEUE = "publicqueue-91b3"
PUBLIC_BODY = "public-body-44f0"
OTHER_QUEUE = "otherappqueue-b8e6"
OTHER_BODY = "other-app-secret-body-0d9c"

# Callers: no key, an unknown key, the owner's key, an application that is neither owner nor
# principal, a principal of the queue (app:notifications), and nobody on a public queue.
CALLERS: dict[str, dict[str, str]] = {
    "none": {},
    "bad_key": {"Authorization": "Application 00000000000000000000000000000000"},
    "owner": AUTH,
    "other_app": THIRD_AUTH,
    "principal": OTHER_AUTH,
    "public": {},
}


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # {queue} and {ids} are filled in with the queue under test and its message
    statuses: tuple[int, int, int, int, int, int]  # in the order of CALLERS
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False  # an accepted request opens a stream that never ends by itself


OPS = (200, 200, 200, 200, 200, 200)
OWNER_ONLY = (401, 401, 200, 403, 403, 401)
READ = (401, 401, 200, 403, 200, 200)  # owner, principals, anyone on a public queue
DELETE = (401, 401, 200, 403, 200, 401)  # owner and principals
# A claim id of the queue's message that is not current: the owner and principals get 409.
STALE_CLAIM = (401, 401, 409, 403, 409, 401)

MATRIX = [
    *(
        Row(m, path, OPS)
        for path in ("/__heartbeat__", "/__lbheartbeat__", "/__version__", "/openapi.json")
        for m in ("GET", "HEAD")
    ),  # fmt: skip
    Row("GET", "/v1/queuey", OWNER_ONLY),
    Row("HEAD", "/v1/queuey", OWNER_ONLY),
    Row("POST", "/v1/queuey", (401, 401, 201, 403, 403, 401), body="queue_name=created"),
    Row("GET", "/v1/queuey/{queue}", READ),
    Row("HEAD", "/v1/queuey/{queue}", READ),
    Row("POST", "/v1/queuey/{queue}", (401, 401, 201, 403, 403, 401), body="posted"),
    Row("PUT", "/v1/queuey/{queue}", OWNER_ONLY, body="partitions=2"),
    Row("DELETE", "/v1/queuey/{queue}", OWNER_ONLY),
    Row("GET", "/v1/queuey/{queue}/{ids}", READ),
    Row("HEAD", "/v1/queuey/{queue}/{ids}", READ),
    Row("PUT", "/v1/queuey/{queue}/{ids}", OWNER_ONLY, body="overwritten"),
    Row("DELETE", "/v1/queuey/{queue}/{ids}", DELETE),
    Row("POST", "/v1/queuey/{queue}/claims", DELETE, body="limit=1"),
    Row("DELETE", "/v1/queuey/{queue}/claims/{claim}", STALE_CLAIM),
    Row("PATCH", "/v1/queuey/{queue}/claims/{claim}", STALE_CLAIM, body="ttl=10"),
    Row("GET", "/v1/queuey/{queue}/stats", DELETE),
    Row("HEAD", "/v1/queuey/{queue}/stats", DELETE),
    Row("GET", "/v1/queuey/{queue}/stream", READ, stream=True),  # broadcast: the read right
    Row("HEAD", "/v1/queuey/{queue}/stream", READ),
]


def test_the_matrix_covers_every_route_of_the_app() -> None:
    covered = {
        (
            row.path.replace("/v1/queuey", "/v1/{app}", 1).replace("{claim}", "{claim_ids}"),
            row.method.lower(),
        )
        for row in MATRIX
    }
    assert covered == app_operations()


async def populate(api: Api) -> dict[str, str]:
    """The owner's private queue (principal: notifications) and public queue, each with a
    message, and a queue of another application; the ids of the owner's messages."""
    ids = {}
    for name, body, params in (
        (OWNER_QUEUE, OWNER_BODY, {"principles": "app:notifications"}),
        (PUBLIC_QUEUE, PUBLIC_BODY, {"type": "public"}),
    ):
        await api.mkq(queue_name=name, **params)
        ids[name] = (await api.post(name, body))["key"]
    created = await api.http.simulate_post(
        "/v1/third", headers=THIRD_AUTH, body=f"queue_name={OTHER_QUEUE}", content_type=FORM
    )
    assert created.status_code == 201
    posted = await api.http.simulate_post(f"/v1/third/{OTHER_QUEUE}", headers=THIRD_AUTH,
                                          body=OTHER_BODY, content_type="text/plain")  # fmt: skip
    assert posted.status_code == 201
    return ids


async def owner_view(api: Api) -> tuple[object, ...]:
    """What the owner sees of its queues and messages (to tell that nothing changed)."""
    listed = await api.http.simulate_get("/v1/queuey", params={"details": "true"}, headers=AUTH)
    reads = [await api.read(name) for name in (OWNER_QUEUE, PUBLIC_QUEUE)]
    return (
        listed.json["queues"],
        [[(m["message_id"], m["body"]) for m in read] for read in reads],
    )


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("row", MATRIX, ids=lambda row: f"{row.method} {row.path}")
async def test_each_caller_gets_exactly_its_status_and_sees_only_its_own(
    api: Api, row: Row, caller: str
) -> None:
    ids = await populate(api)
    queue = PUBLIC_QUEUE if caller == "public" else OWNER_QUEUE
    stale_claim = f"{ids[queue]}01{1:016x}"  # partition 1, a token never handed out
    path = row.path.format(queue=queue, ids=ids[queue], claim=stale_claim)
    before = await owner_view(api)
    expected = row.statuses[list(CALLERS).index(caller)]
    if row.stream:
        async with api.http.get_stream(path, headers=CALLERS[caller]) as opened:
            if opened.status_code == 200:  # streaming: it sends only what is posted from now
                assert expected == 200
                return
        # a refusal is a plain response: asked again below to read it whole
    result = await api.http.simulate_request(
        row.method,
        path,
        headers={**CALLERS[caller], **row.headers},
        body=row.body,
        content_type=FORM if row.body else None,
    )

    assert result.status_code == expected, result.text
    text = result.text + str(result.headers)
    assert OTHER_QUEUE not in text and OTHER_BODY not in text
    if expected in (401, 403):
        assert OWNER_QUEUE not in text and OWNER_BODY not in text
        assert PUBLIC_QUEUE not in text and PUBLIC_BODY not in text
        assert row.method == "HEAD" or list(result.json["error_msg"]) == (
            ["Forbidden"] if expected == 403
            else ["InvalidApplicationKey"] if caller == "bad_key"
            else ["Unauthorized"]
        )  # fmt: skip
        assert await owner_view(api) == before  # nothing changed


@pytest.mark.parametrize("caller", ["none", "bad_key", "other_app", "principal"])
async def test_denied_callers_cannot_tell_a_missing_queue_from_a_private_one(
    api: Api, caller: str
) -> None:
    ids = await populate(api)
    headers = CALLERS[caller]
    for row in MATRIX:
        if "{queue}" not in row.path or row.statuses[list(CALLERS).index(caller)] not in (401, 403):
            continue
        answers = [
            await api.http.simulate_request(
                row.method,
                row.path.format(
                    queue=name, ids=ids[OWNER_QUEUE], claim=f"{ids[OWNER_QUEUE]}01{1:016x}"
                ),
                headers=headers,
                body=row.body,
                content_type=FORM if row.body else None,
            )  # fmt: skip
            for name in (OWNER_QUEUE, "nosuchqueue", OTHER_QUEUE)
        ]
        assert len({(a.status_code, a.text) for a in answers}) == 1, (row, caller)


def test_the_matrix_statuses_follow_one_rule_per_right() -> None:
    """Every row is one of the rights of api.md (owner, read, delete/claim) or open to all."""
    kinds = {OPS, OWNER_ONLY, READ, DELETE, STALE_CLAIM}
    for row in MATRIX:
        statuses = row.statuses
        if statuses not in kinds:  # a create: the owner's success is 201
            assert statuses == tuple(201 if s == 200 else s for s in OWNER_ONLY), row


async def test_other_applications_queues_never_show_in_listings(api: Api) -> None:
    await populate(api)
    for params in ({}, {"details": "true"}, {"include_count": "true"}, {"offset": "a"}):
        listed = await api.http.simulate_get("/v1/queuey", params=params, headers=AUTH)
        assert OTHER_QUEUE not in listed.text and listed.status_code == 200
    cross = await api.http.simulate_get(f"/v1/queuey/{OTHER_QUEUE}", headers=AUTH)
    assert cross.status_code == 404  # the owner's namespace has no such queue
    assert OTHER_BODY not in cross.text
    query = urlencode({"partitions": "1"})
    foreign = await api.http.simulate_get(f"/v1/third/{OTHER_QUEUE}?{query}", headers=AUTH)
    assert foreign.status_code == 403 and OTHER_BODY not in foreign.text
