"""Who may do what: owners, principals, public queues, other applications, nobody."""

from __future__ import annotations

from typing import Any

import pytest

from queuey.core.models import Caller, Queue
from queuey.service import rights
from tests.api.conftest import AUTH, OTHER_AUTH, THIRD_AUTH, Api


async def test_principal_can_read_and_delete_but_not_post(api: Api) -> None:  # item 84
    queue = await api.mkq(principles="app:notifications")
    posted = await api.post(queue, "shared")
    url = f"/v1/queuey/{queue}"
    read = await api.http.simulate_get(url, headers=OTHER_AUTH)
    assert read.status_code == 200 and [m["body"] for m in read.json["messages"]] == ["shared"]
    by_id = await api.http.simulate_get(f"{url}/{posted['key']}", headers=OTHER_AUTH)
    assert by_id.status_code == 200 and len(by_id.json["messages"]) == 1
    post = await api.http.simulate_post(url, headers=OTHER_AUTH, body="nope")
    assert post.status_code == 403
    assert post.json["error_msg"] == {"Forbidden": "Access was denied to this resource."}
    for attempt in (
        api.http.simulate_put(url, headers=OTHER_AUTH, body="partitions=2"),
        api.http.simulate_delete(url, headers=OTHER_AUTH),
        api.http.simulate_put(f"{url}/{posted['key']}", headers=OTHER_AUTH, body="x"),
    ):
        assert (await attempt).status_code == 403
    delete = await api.http.simulate_delete(f"{url}/{posted['key']}", headers=OTHER_AUTH)
    assert delete.status_code == 200
    assert await api.read(queue) == []


async def test_owner_keeps_every_right_when_principles_are_set(api: Api) -> None:
    queue = await api.mkq(principles="app:notifications")
    await api.post(queue, "mine too")  # the original took reading away from the owner
    assert [m["body"] for m in await api.read(queue)] == ["mine too"]


async def test_application_not_listed_gets_403_on_every_route(api: Api) -> None:
    queue = await api.mkq(principles="app:notifications")
    posted = await api.post(queue, "secret")
    url = f"/v1/queuey/{queue}"
    for result in (
        await api.http.simulate_get(url, headers=THIRD_AUTH),
        await api.http.simulate_get(f"{url}/{posted['key']}", headers=THIRD_AUTH),
        await api.http.simulate_delete(f"{url}/{posted['key']}", headers=THIRD_AUTH),
        await api.http.simulate_get("/v1/queuey", headers=THIRD_AUTH),  # item 85
        await api.http.simulate_post("/v1/queuey", headers=THIRD_AUTH),
    ):
        assert result.status_code == 403
        assert "secret" not in result.text and queue not in result.text
    assert len(await api.read(queue)) == 1


async def test_no_credentials_on_a_private_queue_is_401(api: Api) -> None:
    queue = await api.mkq()
    for result in (
        await api.http.simulate_get(f"/v1/queuey/{queue}"),
        await api.http.simulate_post(f"/v1/queuey/{queue}", body="x"),
        await api.http.simulate_get("/v1/queuey"),
    ):
        assert result.status_code == 401
        assert result.headers["www-authenticate"] == "Application"


async def test_outsiders_cannot_tell_missing_queues_from_private_ones(api: Api) -> None:
    queue = await api.mkq()
    for headers, status in (({}, 401), (THIRD_AUTH, 403)):
        existing = await api.http.simulate_get(f"/v1/queuey/{queue}", headers=headers)
        missing = await api.http.simulate_get("/v1/queuey/nosuchqueue", headers=headers)
        assert existing.status_code == missing.status_code == status
        assert existing.json == missing.json


async def test_a_refusal_runs_the_same_checks_whether_or_not_the_queue_exists(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 finding 10: the time of another application's 403 told whether the queue
    existed, the checks of its settings running only when it did."""
    queue = await api.mkq(principles="app:notifications")
    checked: list[tuple[str | None, str]] = []
    real = rights.grants

    def spy(caller: Caller, found: Queue, right: Any) -> bool:
        checked.append((caller.app, right.name))
        return real(caller, found, right)

    monkeypatch.setattr(rights, "grants", spy)
    for name in (queue, "nosuchqueue"):
        for headers, status in (({}, 401), (THIRD_AUTH, 403)):
            result = await api.http.simulate_get(f"/v1/queuey/{name}", headers=headers)
            assert result.status_code == status
    assert checked == [(None, "READ"), ("third", "READ")] * 2
    allowed = await api.http.simulate_get(f"/v1/queuey/{queue}", headers=OTHER_AUTH)
    assert allowed.status_code == 200


async def test_public_queue_allows_anonymous_reads_only(api: Api) -> None:
    queue = await api.mkq(type="public")
    posted = await api.post(queue, "news")
    url = f"/v1/queuey/{queue}"
    assert (await api.http.simulate_get(url)).status_code == 200
    assert (await api.http.simulate_head(url)).status_code == 200
    by_id = await api.http.simulate_get(f"{url}/{posted['key']}")
    assert by_id.status_code == 200 and by_id.json["messages"][0]["body"] == "news"
    assert (await api.http.simulate_get(url, headers=THIRD_AUTH)).status_code == 200
    assert (await api.http.simulate_post(url, body="x")).status_code == 401
    assert (await api.http.simulate_delete(f"{url}/{posted['key']}")).status_code == 401
    assert (await api.http.simulate_delete(url, headers=THIRD_AUTH)).status_code == 403


async def test_invalid_key_on_public_queue_is_401(api: Api) -> None:  # item 86
    queue = await api.mkq(type="public")
    result = await api.http.simulate_get(
        f"/v1/queuey/{queue}", headers={"Authorization": "Application nope"}
    )
    assert result.status_code == 401
    assert list(result.json["error_msg"]) == ["InvalidApplicationKey"]


async def test_several_credentials_and_other_schemes(api: Api) -> None:
    queue = await api.mkq()
    header = "Basic Zm9vOmJhcg==; " + AUTH["Authorization"]
    result = await api.http.simulate_get(f"/v1/queuey/{queue}", headers={"Authorization": header})
    assert result.status_code == 200
    anonymous = await api.http.simulate_get(
        f"/v1/queuey/{queue}", headers={"Authorization": "Basic Zm9vOmJhcg=="}
    )
    assert anonymous.status_code == 401


async def test_keys_starting_with_application_letters_work(api: Api) -> None:
    # The original stripped the letters of "Application " from both ends of the key.
    result = await api.http.simulate_get(
        "/v1/third", headers={"Authorization": "Application  fedcba9876543210fedcba9876543210 "}
    )
    assert result.status_code == 200


async def test_queues_of_other_applications_are_invisible(api: Api) -> None:
    await api.mkq(queue_name="mine")
    created = await api.http.simulate_post(
        "/v1/notifications", headers=OTHER_AUTH, body="queue_name=theirs"
    )
    assert created.status_code == 201
    listed = await api.http.simulate_get("/v1/notifications", headers=OTHER_AUTH)
    assert listed.json["queues"] == [{"queue_name": "theirs"}]
    listed = await api.http.simulate_get("/v1/queuey", headers=AUTH)
    assert listed.json["queues"] == [{"queue_name": "mine"}]
    same_name = await api.http.simulate_post(
        "/v1/notifications", headers=OTHER_AUTH, body="queue_name=mine"
    )
    assert same_name.status_code == 201  # names are per application
