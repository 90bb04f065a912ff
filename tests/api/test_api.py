"""Part 1 of api.md beyond what the original tested: limits, listing, cursors, TTL, HEAD."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.api.conftest import AUTH, FORM, Api

JSON = "application/json"


async def create(api: Api, body: str) -> Any:
    return await api.http.simulate_post("/v1/queuey", headers=AUTH, body=body, content_type=FORM)


async def test_a_new_queue_says_it_was_created(api: Api) -> None:
    result = await create(api, "queue_name=jobs&partitions=2")

    assert result.status_code == 201
    assert (result.json["queue_name"], result.json["partitions"]) == ("jobs", 2)
    assert result.json["created"] is True


async def test_creating_an_existing_queue_with_the_same_settings_answers_it(api: Api) -> None:
    first = await create(
        api, "queue_name=qdo_error&partitions=7&type=public&principles=app:a,app:b"
    )
    # What qdo workers send, and the same settings in another order: the queue as it is.
    again = await create(api, "queue_name=qdo_error&partitions=7")
    reordered = await create(api, "queue_name=qdo_error&principles=app:b,app:a&type=public")
    named = await create(api, "queue_name=qdo_error")

    for result in (again, reordered, named):
        assert result.status_code == 201, result.text
        assert result.json["created"] is False
        assert result.json == {**first.json, "created": False}
    assert (again.json["partitions"], again.json["type"]) == (7, "public")
    listed = await api.http.simulate_get("/v1/queuey", headers=AUTH)
    assert listed.json["queues"] == [{"queue_name": "qdo_error"}]


async def test_creating_an_existing_queue_with_a_different_setting_is_409(api: Api) -> None:
    await api.mkq(queue_name="jobs", partitions=2, claim_ttl=60)
    await api.post("jobs", "kept")

    for body in ("partitions=3", "claim_ttl=30", "type=public", "principles=app:other"):
        result = await create(api, f"queue_name=jobs&{body}")
        assert result.status_code == 409, body
        assert result.json["error_msg"] == {
            "QueueAlreadyExists": "Queue of that name already exists."
        }
    info = await api.http.simulate_get("/v1/queuey", headers=AUTH, params={"details": "yes"})
    [queue] = info.json["queues"]
    assert (queue["partitions"], queue["claim_ttl"]) == (2, 60)  # not overwritten
    assert [m["body"] for m in await api.read("jobs", partitions="1,2")] == ["kept"]


async def test_concurrent_creations_with_the_same_settings_all_answer_201(api: Api) -> None:
    results = await asyncio.gather(
        *(create(api, "queue_name=shared&partitions=3") for _ in range(8))
    )

    assert [r.status_code for r in results] == [201] * 8
    assert sorted(r.json["created"] for r in results) == [False] * 7 + [True]


async def test_create_queue_from_json_and_multipart(api: Api) -> None:
    result = await api.http.simulate_post(
        "/v1/queuey", headers=AUTH, content_type=JSON,
        body=json.dumps({"queue_name": "j", "partitions": 4, "type": "public"}),
    )  # fmt: skip
    assert result.status_code == 201
    assert (result.json["partitions"], result.json["type"]) == (4, "public")
    boundary = "xYzZY"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="queue_name"\r\n\r\nm\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="partitions"\r\n\r\n3\r\n'
        f"--{boundary}--\r\n"
    )
    result = await api.http.simulate_post(
        "/v1/queuey", headers=AUTH, body=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )  # fmt: skip
    assert result.status_code == 201, result.text
    assert (result.json["queue_name"], result.json["partitions"]) == ("m", 3)


async def test_create_queue_validation_reports_every_field(api: Api) -> None:
    result = await api.http.simulate_post(
        "/v1/queuey", headers=AUTH, content_type=FORM,
        body="queue_name=bad%20name&partitions=201&type=secret&consistency=eventual&colour=red",
    )  # fmt: skip
    assert result.status_code == 400
    errors = result.json["error_msg"]
    assert set(errors) == {"queue_name", "partitions", "type", "consistency", "colour"}
    assert errors["partitions"] == "201 is greater than maximum value 200"
    assert errors["type"] == '"secret" is not one of user, public'
    assert errors["consistency"] == '"eventual" is not one of weak, strong, very_strong'
    for name in ("x" * 65, "a/b", "é"):
        result = await api.http.simulate_post(
            "/v1/queuey", headers=AUTH, content_type=JSON, body=json.dumps({"queue_name": name})
        )
        assert result.status_code == 400 and list(result.json["error_msg"]) == ["queue_name"]
    result = await api.http.simulate_post("/v1/queuey", headers=AUTH, content_type=JSON, body="[1]")
    assert result.status_code == 400 and list(result.json["error_msg"]) == ["InvalidParameter"]


async def test_queue_listing_pages_by_offset(api: Api) -> None:
    for name in ("c", "a", "e", "b", "d"):
        await api.mkq(queue_name=name)

    async def names(**params: str) -> list[str]:
        result = await api.http.simulate_get("/v1/queuey", headers=AUTH, params=params)
        assert result.status_code == 200
        return [q["queue_name"] for q in result.json["queues"]]

    assert await names() == ["a", "b", "c", "d", "e"]
    assert await names(limit="2") == ["a", "b"]
    assert await names(limit="2", offset="b") == ["b", "c"]
    assert await names(offset="bb") == ["c", "d", "e"]
    for params, key in (({"limit": "0"}, "limit"), ({"limit": "10001"}, "limit"),
                        ({"details": "maybe"}, "details")):  # fmt: skip
        result = await api.http.simulate_get("/v1/queuey", headers=AUTH, params=params)
        assert result.status_code == 400 and list(result.json["error_msg"]) == [key]


async def test_read_descending_and_cursors(api: Api) -> None:
    queue = await api.mkq()
    keys = []
    for body in ("a", "b", "c", "d"):
        keys.append((await api.post(queue, body))["key"])
        api.clock.advance(0.5)

    async def bodies(**params: str) -> str:
        return "".join(m["body"] for m in await api.read(queue, **params))

    assert await bodies(order="descending") == "dcba"
    assert await bodies(order="descending", limit="2") == "dc"
    assert await bodies(since=keys[1], order="descending") == "ba"
    assert await bodies(after=keys[1]) == "cd"
    assert await bodies(after=keys[1], order="descending") == "a"
    assert await bodies(after=keys[3]) == ""
    assert await bodies(since="0") == "abcd"
    result = await api.http.simulate_get(
        f"/v1/queuey/{queue}", headers=AUTH, params={"since": keys[0], "after": keys[1]}
    )
    assert result.status_code == 400


async def test_partitions_outside_the_queue_read_nothing(api: Api) -> None:
    queue = await api.mkq(partitions=2)
    await api.post(queue, "x", **{"X-Partition": "2"})
    assert await api.read(queue, partitions="0,3,99") == []
    assert await api.read(queue, partitions="") == []
    assert [m["body"] for m in await api.read(queue, partitions="02")] == ["x"]


async def test_expired_messages_are_never_returned(api: Api) -> None:
    queue = await api.mkq()
    short = await api.post(queue, "short", **{"X-TTL": "5"})
    await api.post(queue, "long", **{"X-TTL": "50"})
    api.clock.advance(5)
    assert [m["body"] for m in await api.read(queue)] == ["long"]
    by_id = await api.http.simulate_get(f"/v1/queuey/{queue}/{short['key']}", headers=AUTH)
    assert by_id.json["messages"] == []


async def test_sweep_reclaims_expired_and_deleted_messages(api: Api) -> None:
    queue = await api.mkq()
    for _ in range(5):
        await api.post(queue, "gone soon", **{"X-TTL": "1"})
    doomed = await api.mkq()
    await api.post(doomed, "deleted with its queue")
    await api.http.simulate_delete(f"/v1/queuey/{doomed}", headers=AUTH)
    api.clock.advance(2)
    assert await api.service.sweeper.sweep_once(batch=2) >= 5  # memory frees deleted queues at once
    assert await api.service.sweeper.sweep_once(batch=2) == 0


async def test_content_type_is_stored_and_returned(api: Api) -> None:
    queue = await api.mkq()
    await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body="<b/>", content_type="application/xml"
    )
    batch = {"messages": [{"body": "{}", "content_type": "application/json"}, {"body": "t"}]}
    await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=json.dumps(batch), content_type=JSON
    )
    assert [m["content_type"] for m in await api.read(queue)] == [
        "application/xml", "application/json", "text/plain",
    ]  # fmt: skip


async def test_body_over_the_limit_is_413(api: Api) -> None:
    queue = await api.mkq()
    limit = api.service.limits.max_message_bytes
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body="x" * (limit + 1)
    )
    assert result.status_code == 413 and list(result.json["error_msg"]) == ["body"]
    assert (await api.post(queue, "x" * limit))["partition"] == 1
    batch = {"messages": [{"body": "ok"}, {"body": "é" * (limit // 2 + 1)}]}
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=json.dumps(batch), content_type=JSON
    )
    assert result.status_code == 413 and list(result.json["error_msg"]) == ["1.body"]
    assert len(await api.read(queue)) == 1


async def test_batch_limits_and_item_errors(api: Api) -> None:
    queue = await api.mkq()

    async def post(batch: Any) -> Any:
        return await api.http.simulate_post(
            f"/v1/queuey/{queue}", headers=AUTH, body=json.dumps(batch), content_type=JSON
        )

    too_many = await post({"messages": [{"body": "x"}] * 1001})
    assert too_many.status_code == 400
    assert too_many.json["error_msg"] == {"messages": "1001 is greater than maximum value 1000"}
    items = [
        {"body": ""},
        "text",
        {"body": 5, "ttl": "x"},
        {"body": {"a": 1}},
        {"body": "ok", "content_type": 3},
    ]
    result = await post({"messages": items})
    assert result.status_code == 400
    expected = {"0.body", "1", "2.ttl", "3.body", "4.content_type"}
    assert set(result.json["error_msg"]) == expected
    assert (await post({"messages": []})).json == {"status": "ok", "messages": []}
    assert await api.read(queue) == []


async def test_head_answers_like_get_without_a_body(api: Api) -> None:
    queue = await api.mkq()
    for path in ("/v1/queuey", f"/v1/queuey/{queue}", "/__version__", "/__lbheartbeat__"):
        result = await api.http.simulate_head(path, headers=AUTH)
        assert result.status_code == 200, path
        assert result.content == b""


async def test_trailing_slash_and_encoded_separators(api: Api) -> None:
    queue = await api.mkq(partitions=2)
    posted = await api.post(queue, "p2", **{"X-Partition": "2"})
    assert (await api.http.simulate_get("/v1/queuey/", headers=AUTH)).status_code == 200
    result = await api.http.simulate_get(f"/v1/queuey/{queue}/2%3A{posted['key']}%2C", headers=AUTH)
    assert [m["body"] for m in result.json["messages"]] == ["p2"]


async def test_version_and_heartbeats(api: Api) -> None:
    version = await api.http.simulate_get("/__version__")
    assert version.status_code == 200 and version.json["status"] == "ok"
    assert version.json["version"]
    assert (await api.http.simulate_get("/__lbheartbeat__")).json == {"status": "ok"}


async def test_put_by_id_validation(api: Api) -> None:
    queue = await api.mkq(partitions=2)
    key = (await api.post(queue, "x", **{"X-Partition": "1"}))["key"]
    url = f"/v1/queuey/{queue}"
    result = await api.http.simulate_put(f"{url}/{key}", headers=AUTH, body="")
    assert result.status_code == 400 and result.json["error_msg"] == {"body": "Required"}
    result = await api.http.simulate_put(f"{url}/{key}", headers={**AUTH, "X-TTL": "0"}, body="y")
    assert result.json["error_msg"] == {"ttl": "0 is less than minimum value 1"}
    result = await api.http.simulate_put(f"{url}/3%3A{key}", headers=AUTH, body="y")
    assert result.json["error_msg"] == {"partition": "3 is greater than maximum value 2"}
    assert [m["body"] for m in await api.read(queue)] == ["x"]


async def test_posts_to_a_deleted_queue_fail_and_a_new_queue_starts_empty(api: Api) -> None:
    queue = await api.mkq(queue_name="reborn")
    await api.post(queue, "old life")
    await api.http.simulate_delete(f"/v1/queuey/{queue}", headers=AUTH)
    result = await api.http.simulate_post(f"/v1/queuey/{queue}", headers=AUTH, body="x")
    assert result.status_code == 404
    await api.mkq(queue_name="reborn")
    assert await api.read("reborn") == []
