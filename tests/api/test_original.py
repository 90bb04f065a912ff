"""Every behaviour the original Queuey's test suite checked over HTTP, as api.md adapts it.

Item numbers refer to shared/docs/reference/original-tests.md."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote_plus

from tests.api.conftest import AUTH, FORM, Api

JSON = "application/json"


async def test_create_queue_without_credentials_is_401_json(api: Api) -> None:  # item 1
    result = await api.http.simulate_post("/v1/queuey", body="", content_type=FORM)
    assert result.status_code == 401
    assert result.headers["www-authenticate"] == "Application"
    assert result.json == {
        "status": "error",
        "error_msg": {"Unauthorized": result.json["error_msg"]["Unauthorized"]},
    }


async def test_unknown_application_is_404(api: Api) -> None:  # item 2
    result = await api.http.simulate_get("/v1/fredrick")
    assert result.status_code == 404
    assert result.json["error_msg"] == {
        "InvalidApplication": "Application of that name was not found."
    }


async def test_unknown_path_is_404_json(api: Api) -> None:  # item 3
    result = await api.http.simulate_post("/blah")
    assert result.status_code == 404
    assert result.json["status"] == "error"
    assert list(result.json["error_msg"]) == ["NotFound"]


async def test_bad_application_key_is_401_invalid_application_key(api: Api) -> None:  # item 4
    result = await api.http.simulate_post(
        "/v1/queuey", headers={"Authorization": "Application OOPS"}
    )
    assert result.status_code == 401
    assert result.json == {
        "status": "error",
        "error_msg": {"InvalidApplicationKey": "Invalid application key"},
    }


async def test_post_to_unregistered_queue_is_404(api: Api) -> None:  # item 5
    queue = await api.mkq()
    result = await api.http.simulate_post(f"/v1/queuey/{queue}blip", headers=AUTH, body="hi")
    assert result.status_code == 404
    assert result.json["error_msg"] == {"InvalidQueueName": "Queue of that name was not found."}


async def test_post_to_overlong_queue_name_is_404(api: Api) -> None:  # item 6
    result = await api.http.simulate_post("/v1/queuey/" + "blip" * 30, headers=AUTH, body="hi")
    assert result.status_code == 404
    assert "InvalidQueueName" in result.json["error_msg"]


async def test_list_queues(api: Api) -> None:  # items 7, 8
    queue = await api.mkq()
    result = await api.http.simulate_get("/v1/queuey", headers=AUTH)
    assert result.status_code == 200
    assert result.json == {"status": "ok", "queues": [{"queue_name": queue}]}


async def _info(api: Api, queue: str, include_count: bool = False) -> dict[str, object]:
    result = await api.http.simulate_get(
        "/v1/queuey",
        headers=AUTH,
        params={"details": "true", "offset": queue, "include_count": str(include_count),
                "limit": "1"},
    )  # fmt: skip
    assert result.status_code == 200
    info: dict[str, object] = result.json["queues"][0]
    return info


async def test_create_queue_defaults_to_uuid4_hex_name(api: Api) -> None:  # items 9, 76
    result = await api.http.simulate_post("/v1/queuey", headers=AUTH)
    assert result.status_code == 201
    name = result.json["queue_name"]
    assert uuid.UUID(hex=name).version == 4 and name == uuid.UUID(hex=name).hex
    assert result.json == {
        "status": "ok",
        "queue_name": name,
        "partitions": 1,
        "type": "user",
        "consistency": "strong",
        "principles": [],
        # the work-queue settings of api.md Part 2, at their defaults
        "delivery": "at_least_once",
        "claim_ttl": 30,
        "max_deliveries": 0,
        "dead_letter_queue": None,
        "delay": 0,
        "dedup_window": 300,
        "policy": "broadcast",
        "paused": False,
    }


async def test_queue_with_principles_counts_and_partitions(api: Api) -> None:  # item 10
    queue = await api.mkq(principles="app:queuey")
    info = await _info(api, queue, include_count=True)
    assert info["count"] == 0
    assert info["principles"] == ["app:queuey"]
    assert info["partitions"] == 1


async def test_update_queue_changes_only_what_is_sent(api: Api) -> None:  # items 11, 12, 78
    queue = await api.mkq(principles="app:queuey", type="public", consistency="weak")
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}", headers=AUTH, body="partitions=2", content_type=FORM
    )
    assert result.status_code == 200
    assert result.json["partitions"] == 2
    assert result.json["principles"] == ["app:queuey"]
    assert result.json["type"] == "public"  # the original reset type and consistency
    assert result.json["consistency"] == "weak"
    assert isinstance(result.json["created"], float)
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}",
        headers=AUTH,
        body="principles=app:queuey,app:notifications",
        content_type=FORM,
    )
    assert result.status_code == 200
    assert result.json["principles"] == ["app:queuey", "app:notifications"]


async def test_update_queue_accepts_a_json_object(api: Api) -> None:
    queue = await api.mkq()
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}", headers=AUTH, body='{"partitions": 3}', content_type=JSON
    )
    assert result.status_code == 200
    assert result.json["partitions"] == 3


async def test_lowering_partitions_is_400_invalid_update(api: Api) -> None:  # item 13
    queue = await api.mkq(partitions=2)
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}", headers=AUTH, body="partitions=1", content_type=FORM
    )
    assert result.status_code == 400
    assert result.json == {
        "status": "error",
        "error_msg": {"InvalidUpdate": "Partitions can only be increased."},
    }


async def test_public_queue_is_readable_without_credentials(api: Api) -> None:  # items 14, 15
    queue = await api.mkq(type="public")
    assert (await _info(api, queue))["type"] == "public"
    await api.post(queue, "for everyone")
    result = await api.http.simulate_get(f"/v1/queuey/{queue}")
    assert result.status_code == 200
    assert result.json["status"] == "ok"
    assert [m["body"] for m in result.json["messages"]] == ["for everyone"]


async def test_queue_details_show_defaults_and_partitions(api: Api) -> None:  # item 16
    queue = await api.mkq(partitions=3)
    info = await _info(api, queue)
    assert info["type"] == "user"
    assert info["queue_name"] == queue
    assert info["partitions"] == 3
    assert info["application"] == "queuey"
    assert info["consistency"] == "strong"
    assert "count" not in info


async def test_deleted_queue_is_404(api: Api) -> None:  # items 17, 18
    queue = await api.mkq()
    result = await api.http.simulate_delete(f"/v1/queuey/{queue}", headers=AUTH)
    assert result.status_code == 200
    assert result.json == {"status": "ok"}
    result = await api.http.simulate_get(f"/v1/queuey/{queue}", headers=AUTH)
    assert result.status_code == 404
    assert result.json["status"] == "error"


async def test_invalid_principles_are_400(api: Api) -> None:  # items 19, 20
    for principles in ("app:queuey,apple:oranges", "apple:oranges"):
        result = await api.http.simulate_post(
            "/v1/queuey", headers=AUTH, body=f"principles={principles}", content_type=FORM
        )
        assert result.status_code == 400
        assert result.json["error_msg"] == {
            "principles": "'apple:oranges' is not a valid permission list."
        }


async def test_raw_post_answers_key_timestamp_partition(api: Api) -> None:  # items 21, 83
    queue = await api.mkq()
    result = await api.http.simulate_post(f"/v1/queuey/{queue}", headers=AUTH, body="Hello there!")
    assert result.status_code == 201
    [item] = result.json["messages"]
    assert set(item) == {"key", "timestamp", "partition"}
    assert len(item["key"]) == 32 and uuid.UUID(hex=item["key"]).version == 1
    assert isinstance(item["timestamp"], str) and len(item["timestamp"].split(".")[1]) == 7
    assert item["partition"] == 1


async def test_batch_post_into_partitions_and_read_grouped(api: Api) -> None:  # items 22, 32, 33
    queue = await api.mkq(partitions=3)
    batch = {"messages": [
        {"body": "Hello msg 1", "partition": 2},
        {"body": "Hello msg 2", "partition": 2},
        {"body": "Hello msg 3", "partition": 1, "ttl": 3600},
    ]}  # fmt: skip
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=json.dumps(batch), content_type=JSON
    )
    assert result.status_code == 201
    assert [m["partition"] for m in result.json["messages"]] == [2, 2, 1]
    messages = await api.read(queue, partitions="1,2,3")
    assert [(m["body"], m["partition"]) for m in messages] == [
        ("Hello msg 3", 1), ("Hello msg 1", 2), ("Hello msg 2", 2),
    ]  # fmt: skip
    messages = await api.read(queue, partitions="2")
    assert [m["body"] for m in messages] == ["Hello msg 1", "Hello msg 2"]


async def test_batch_without_partition_goes_to_a_valid_partition(api: Api) -> None:  # item 23
    queue = await api.mkq(partitions=3)
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body='{"messages":[{"body":"Hello msg 1"}]}',
        content_type="Application/JSON; charset=utf-8",
    )  # fmt: skip
    assert result.status_code == 201
    assert result.json["status"] == "ok"
    assert 1 <= result.json["messages"][0]["partition"] <= 3


async def test_ttl_header_bounds(api: Api) -> None:  # items 24, 25
    queue = await api.mkq()
    ok = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers={**AUTH, "X-TTL": "33554432"}, body="x"
    )
    assert ok.status_code == 201 and ok.json["status"] == "ok"
    for ttl, message in (
        ("0", "0 is less than minimum value 1"),
        ("33554433", "33554433 is greater than maximum value 33554432"),
        ("abc", '"abc" is not a number'),
    ):
        bad = await api.http.simulate_post(
            f"/v1/queuey/{queue}", headers={**AUTH, "X-TTL": ttl}, body="x"
        )
        assert bad.status_code == 400
        assert bad.json == {"status": "error", "error_msg": {"ttl": message}}


async def test_partition_header_errors(api: Api) -> None:  # items 26, 28
    queue = await api.mkq()
    for partition, message in (
        ("fred", '"fred" is not a number'),
        ("4", "4 is greater than maximum value 1"),
        ("0", "0 is less than minimum value 1"),
    ):
        result = await api.http.simulate_post(
            f"/v1/queuey/{queue}", headers={**AUTH, "X-Partition": partition}, body="x"
        )
        assert result.status_code == 400
        assert result.json["error_msg"] == {"partition": message}


async def test_empty_raw_body_is_required(api: Api) -> None:  # item 27
    queue = await api.mkq()
    result = await api.http.simulate_post(f"/v1/queuey/{queue}", headers=AUTH, body="")
    assert result.status_code == 400
    assert result.json["error_msg"] == {"body": "Required"}


async def test_bad_batch_item_names_it_and_stores_nothing(api: Api) -> None:  # item 29
    queue = await api.mkq()
    batch = {"messages": [{"body": "Hello msg 1"}, {"body": "Hello msg 2", "partition": 4}]}
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=json.dumps(batch), content_type=JSON
    )
    assert result.status_code == 400
    assert result.json["error_msg"] == {"1.partition": "4 is greater than maximum value 1"}
    assert await api.read(queue) == []


async def test_non_json_batch_body_is_invalid_parameter(api: Api) -> None:  # item 30
    queue = await api.mkq()
    for body in ("[this isnt good}", "", "[1, 2]", '{"nomessages": []}', '{"messages": "x"}'):
        result = await api.http.simulate_post(
            f"/v1/queuey/{queue}", headers=AUTH, body=body, content_type=JSON
        )
        assert result.status_code == 400, body
        assert result.json["status"] == "error"
        assert list(result.json["error_msg"]) == ["InvalidParameter"]


async def test_since_message_id_is_inclusive(api: Api) -> None:  # item 31
    queue = await api.mkq()
    await api.post(queue, "Hello there!")
    second = await api.post(queue, "Hello there 2!")
    await api.post(queue, "Hello there! 3")
    messages = await api.read(queue, since=second["key"])
    assert [m["body"] for m in messages] == ["Hello there 2!", "Hello there! 3"]
    assert messages[0]["partition"] == 1


async def test_bad_partitions_list_is_400(api: Api) -> None:  # item 34
    queue = await api.mkq()
    result = await api.http.simulate_get(
        f"/v1/queuey/{queue}", headers=AUTH, params={"partitions": "1,fred"}
    )
    assert result.status_code == 400
    assert result.json["status"] == "error"
    assert list(result.json["error_msg"]) == ["partitions"]


async def test_messages_with_and_without_partition_header(api: Api) -> None:  # item 35
    queue = await api.mkq(partitions=3)
    await api.post(queue, "a", **{"X-Partition": "2"})
    await api.post(queue, "b", **{"X-Partition": "2"})
    await api.post(queue, "c", **{"X-Partition": "1"})
    await api.post(queue, "d")
    assert len(await api.read(queue, partitions="1,2,3")) == 4


async def _by_id_fixture(api: Api) -> tuple[str, list[str]]:
    queue = await api.mkq(partitions=2)
    batch = {"messages": [
        {"body": "Hello msg 1", "partition": 1},
        {"body": "Hello msg 2", "partition": 1},
        {"body": "Hello msg 3", "partition": 2},
    ]}  # fmt: skip
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=json.dumps(batch), content_type=JSON
    )
    return queue, [m["key"] for m in result.json["messages"]]


async def test_get_by_id(api: Api) -> None:  # items 36, 37, 38, 39
    queue, (k1, k2, k3) = await _by_id_fixture(api)
    fake = uuid.uuid1().hex
    url = f"/v1/queuey/{queue}/"
    result = await api.http.simulate_get(url + f"3%3A{fake}", headers=AUTH)
    assert result.status_code == 200 and result.json["messages"] == []
    result = await api.http.simulate_get(url + f"1%3A{k1}", headers=AUTH)
    assert [m["message_id"] for m in result.json["messages"]] == [k1]
    result = await api.http.simulate_get(url + f"1%3A{k1},3%3A{fake}", headers=AUTH)
    assert [m["message_id"] for m in result.json["messages"]] == [k1]
    result = await api.http.simulate_get(url + quote_plus(f"1:{k1},1:{k2},2:{k3}"), headers=AUTH)
    assert {m["body"] for m in result.json["messages"]} == {
        "Hello msg 1", "Hello msg 2", "Hello msg 3",
    }  # fmt: skip


async def test_delete_by_id(api: Api) -> None:  # items 40, 41
    queue = await api.mkq(partitions=2)
    first = await api.post(queue, "one", **{"X-Partition": "2"})
    second = await api.post(queue, "two", **{"X-Partition": "2"})
    await api.post(queue, "three", **{"X-Partition": "2"})
    fourth = await api.post(queue, "four", **{"X-Partition": "1"})
    url = f"/v1/queuey/{queue}/"
    result = await api.http.simulate_delete(
        url + quote_plus(f"2:{first['key']},2:{second['key']}"), headers=AUTH
    )
    assert result.status_code == 200 and result.json == {"status": "ok"}
    assert len(await api.read(queue, partitions="1,2,3")) == 2
    result = await api.http.simulate_delete(url + fourth["key"], headers=AUTH)  # partition 1
    assert result.status_code == 200
    assert [m["body"] for m in await api.read(queue, partitions="1,2,3")] == ["three"]


async def test_malformed_id_is_400_invalid_message_id(api: Api) -> None:  # items 42, 88
    queue = await api.mkq(partitions=2)
    good = uuid.uuid1().hex
    for ids in ("2%3Aasdfasdfasdfadsfasdf", f"{good},zzz", f"{good}xyz", "0%3A" + good,
                "201%3A" + good, uuid.uuid4().hex, "z" * 32):  # fmt: skip
        result = await api.http.simulate_delete(f"/v1/queuey/{queue}/{ids}", headers=AUTH)
        assert result.status_code == 400, ids
        assert result.json == {
            "status": "error",
            "error_msg": {"InvalidMessageID": "Invalid message id's."},
        }
    result = await api.http.simulate_get(f"/v1/queuey/{queue}/12%3A{good}", headers=AUTH)
    assert result.status_code == 200  # the original refused a first partition of 10 or more


async def test_put_overwrites_keeping_timestamp(api: Api) -> None:  # item 43
    queue = await api.mkq()
    posted = await api.post(queue, "Hello", **{"X-TTL": "300"})
    [before] = await api.read(queue)
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}/1%3A{before['message_id']}",
        headers={**AUTH, "X-TTL": "600"}, body="Good bye!",
    )  # fmt: skip
    assert result.status_code == 200 and result.json == {"status": "ok"}
    [after] = await api.read(queue)
    assert after["body"] == "Good bye!"
    assert after["timestamp"] == before["timestamp"] == posted["timestamp"]
    api.clock.advance(400)  # the TTL restarted at the PUT: 600 s from then
    assert len(await api.read(queue)) == 1
    api.clock.advance(300)
    assert await api.read(queue) == []


async def test_put_several_ids(api: Api) -> None:  # item 44
    queue = await api.mkq()
    first = await api.post(queue, "Hello 1")
    second = await api.post(queue, "Hello 2")
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}/" + quote_plus(f"1:{first['key']},1:{second['key']}"),
        headers=AUTH, body="Bye",
    )  # fmt: skip
    assert result.status_code == 200
    assert [m["body"] for m in await api.read(queue)] == ["Bye", "Bye"]


async def test_put_creates_missing_messages_with_their_ids(api: Api) -> None:  # item 45
    queue = await api.mkq()
    ids = [uuid.uuid1().hex, uuid.uuid1().hex]
    result = await api.http.simulate_put(
        f"/v1/queuey/{queue}/" + quote_plus(f"1:{ids[0]},1:{ids[1]}"), headers=AUTH, body="Yo"
    )
    assert result.status_code == 200
    messages = await api.read(queue)
    assert [(m["message_id"], m["body"]) for m in messages] == [(ids[0], "Yo"), (ids[1], "Yo")]
    ticks = uuid.UUID(hex=ids[0]).time - 0x01B21DD213814000
    assert messages[0]["timestamp"] == f"{ticks // 10**7}.{ticks % 10**7:07d}"


async def test_json_content_type_on_every_response(api: Api) -> None:  # item 75
    queue = await api.mkq()
    for result in (
        await api.http.simulate_get(f"/v1/queuey/{queue}", headers=AUTH),
        await api.http.simulate_get(f"/v1/queuey/{queue}"),
        await api.http.simulate_get("/v1/nope"),
    ):
        assert result.headers["content-type"] == "application/json"


async def test_include_count_implies_details_and_counts_live_messages(api: Api) -> None:  # 79
    queue = await api.mkq(partitions=2)
    await api.post(queue, "a", **{"X-Partition": "1", "X-TTL": "10"})
    await api.post(queue, "b", **{"X-Partition": "2"})
    info = await _info(api, queue, include_count=True)
    assert info["count"] == 2 and info["partitions"] == 2
    api.clock.advance(11)
    assert (await _info(api, queue, include_count=True))["count"] == 1


async def test_read_parameter_errors(api: Api) -> None:  # item 80
    queue = await api.mkq()
    for params, error in (
        ({"limit": "0"}, {"limit": "0 is less than minimum value 1"}),
        ({"limit": "1001"}, {"limit": "1001 is greater than maximum value 1000"}),
        ({"order": "foo"}, {"order": '"foo" is not one of ascending, descending'}),
        ({"since": "abc"}, {"since": '"abc" is not a timestamp or a message id'}),
        ({"after": "123.5"}, {"after": '"123.5" is not a message id'}),
    ):
        result = await api.http.simulate_get(f"/v1/queuey/{queue}", headers=AUTH, params=params)
        assert result.status_code == 400
        assert result.json == {"status": "error", "error_msg": error}


async def test_limit_applies_per_partition(api: Api) -> None:  # item 81
    queue = await api.mkq(partitions=2)
    for partition in ("1", "1", "2", "2"):
        await api.post(queue, "m", **{"X-Partition": partition})
    assert len(await api.read(queue, partitions="1,2", limit="1")) == 2


async def test_message_read_shape(api: Api) -> None:  # item 82
    queue = await api.mkq()
    await api.post(queue, "shape")
    [message] = await api.read(queue)
    assert set(message) == {"message_id", "timestamp", "body", "partition", "content_type"}
    assert len(message["message_id"]) == 32 and message["message_id"].islower()
    assert len(message["timestamp"].split(".")[1]) == 7
    assert message["partition"] == 1


async def test_since_decimal_timestamp_is_inclusive(api: Api) -> None:  # item 87
    queue = await api.mkq()
    await api.post(queue, "one")
    api.clock.advance(1)
    second = await api.post(queue, "two")
    messages = await api.read(queue, since=second["timestamp"])
    assert [m["body"] for m in messages] == ["two"]


async def test_utf8_raw_body_is_accepted_and_invalid_utf8_is_400(api: Api) -> None:  # item 89
    queue = await api.mkq()
    await api.post(queue, "héllo wörld ✓")
    assert [m["body"] for m in await api.read(queue)] == ["héllo wörld ✓"]
    result = await api.http.simulate_post(f"/v1/queuey/{queue}", headers=AUTH, body=b"\xff\xfe")
    assert result.status_code == 400
    assert list(result.json["error_msg"]) == ["body"]
    assert "base64" in result.json["error_msg"]["body"]  # says what to do with binary data


async def test_unsupported_method_is_405_with_allow(api: Api) -> None:  # item 90
    queue = await api.mkq()
    result = await api.http.simulate_patch(f"/v1/queuey/{queue}", headers=AUTH)
    assert result.status_code == 405
    assert "GET" in result.headers["allow"] and "POST" in result.headers["allow"]
    assert list(result.json["error_msg"]) == ["MethodNotAllowed"]
    result = await api.http.simulate_delete("/v1/queuey", headers=AUTH)
    assert result.status_code == 405
    heartbeat = await api.http.simulate_get("/__heartbeat__")
    assert heartbeat.status_code == 200 and heartbeat.json == {"status": "ok"}
