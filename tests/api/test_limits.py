"""Hostile input: over-long batches, deep or huge JSON, numbers of thousands of digits, and
bodies cut off in the middle are refused with a 4xx, store nothing, and never get a 500."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from tests.api.conftest import AUTH, FORM, Api

JSON = "application/json"


async def post_json(api: Api, queue: str, body: bytes | str) -> Any:
    return await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=body, content_type=JSON
    )


async def test_a_batch_over_1000_messages_is_400_and_stores_nothing(api: Api) -> None:
    queue = await api.mkq()
    batch = orjson.dumps({"messages": [{"body": "x"}] * 1001})
    result = await post_json(api, queue, batch)
    assert result.status_code == 400
    assert result.json["error_msg"] == {"messages": "1001 is greater than maximum value 1000"}
    many = orjson.dumps({"messages": [{"body": "x"}] * 200_000})  # 2.6 MB, under 10 MiB
    assert (await post_json(api, queue, many)).status_code == 400
    assert await api.read(queue) == []
    exactly = orjson.dumps({"messages": [{"body": "x"}] * 1000})
    assert (await post_json(api, queue, exactly)).status_code == 201


async def test_lists_longer_than_max_partitions_or_the_principals_bound_are_400(
    api: Api,
) -> None:
    """The attack of issue 10 finding 1: 60,000 partitions on a claim, 12,667 on an anonymous
    read of a public queue, 16,000 principals on a create (each once froze the server for
    seconds) are refused naming the field."""
    queue = await api.mkq(type="public")
    partitions = ",".join(str(n) for n in range(1, 60_001))
    result = await api.http.simulate_post(
        f"/v1/queuey/{queue}/claims", headers=AUTH, body=urlencode({"partitions": partitions}),
        content_type=FORM,
    )  # fmt: skip
    assert result.status_code == 400
    assert result.json["error_msg"] == {
        "partitions": "60000 partitions is more than the maximum of 200"
    }
    anonymous = await api.http.simulate_get(
        f"/v1/queuey/{queue}", params={"partitions": ",".join(["1"] * 12_667)}
    )
    assert anonymous.status_code == 400 and "partitions" in anonymous.json["error_msg"]
    principles = ",".join(f"app:a{n}" for n in range(16_000))
    created = await api.http.simulate_post(
        "/v1/queuey", headers=AUTH, body=urlencode({"queue_name": "p", "principles": principles}),
        content_type=FORM,
    )  # fmt: skip
    assert created.status_code == 400 and "principles" in created.json["error_msg"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"messages": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",  # deep arrays
        b'{"messages": [{"body": "x", "ttl": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}]}",
        b'{"messages": [{"body": "x", "ttl": 1e400}]}',  # a float beyond double
        b'{"messages": [{"body": "\\ud800"}]}',  # a lone surrogate
        b'{"messages": [{"body": "x"}]' + b" " * 1000 + b"}}",  # trailing garbage
        b"\xff\xfe{}",
    ],
    ids=["deep-arrays", "deep-objects", "huge-float", "lone-surrogate", "trailing", "not-utf8"],
)
async def test_deep_or_malformed_json_is_400(api: Api, body: bytes) -> None:
    queue = await api.mkq()
    result = await post_json(api, queue, body)
    assert result.status_code == 400, result.text
    assert list(result.json["error_msg"]) == ["InvalidParameter"]
    created = await api.http.simulate_post("/v1/queuey", headers=AUTH, body=body,
                                           content_type=JSON)  # fmt: skip
    assert created.status_code == 400, created.text
    assert await api.read(queue) == []


@pytest.mark.parametrize(
    ("item", "error"),
    [
        # orjson reads integers beyond 64 bits as floats
        ({"ttl": 10**30}, {"0.ttl": f"{int(1e30)} is greater than maximum value 33554432"}),
        ({"ttl": -(10**30)}, {"0.ttl": f"{int(-1e30)} is less than minimum value 1"}),
        ({"ttl": 1.5e300}, {"0.ttl": f"{int(1.5e300)} is greater than maximum value 33554432"}),
        ({"partition": "9" * 5000},
         {"0.partition": "9" * 30 + "... is greater than maximum value 1"}),
        ({"partition": "²"}, {"0.partition": '"²" is not a number'}),
    ],
    ids=["ttl-1e30", "ttl-minus-1e30", "ttl-float", "partition-5000-digits", "superscript"],
)  # fmt: skip
async def test_huge_numbers_are_400_naming_the_field(
    api: Api, item: dict[str, Any], error: dict[str, str]
) -> None:
    queue = await api.mkq()
    result = await post_json(api, queue, json.dumps({"messages": [{"body": "x", **item}]}))
    assert result.status_code == 400
    assert result.json["error_msg"] == error


async def test_numbers_of_thousands_of_digits_in_headers_and_queries_are_400(api: Api) -> None:
    queue = await api.mkq()
    digits = "9" * 5000
    url = f"/v1/queuey/{queue}"
    get = api.http.simulate_get
    for result in (
        await api.http.simulate_post(url, headers={**AUTH, "X-TTL": digits}, body="x"),
        await get(url, params={"limit": digits}, headers=AUTH),
        await get("/v1/queuey", params={"limit": "²"}, headers=AUTH),
        await get(url, params={"partitions": "1,²"}, headers=AUTH),
        await get(url, params={"since": digits}, headers=AUTH),
    ):
        assert result.status_code == 400, result.text


async def test_a_body_over_the_limit_is_413_and_the_connection_is_closed(api: Api) -> None:
    queue = await api.mkq()
    limit = api.service.limits.max_message_bytes
    result = await api.http.simulate_post(f"/v1/queuey/{queue}", headers=AUTH,
                                          body=b"x" * (limit + 1))  # fmt: skip
    assert result.status_code == 413
    assert result.headers["connection"] == "close"
    assert list(result.json["error_msg"]) == ["body"]
    batch = b'{"messages": [{"body": "' + b"x" * api.service.limits.max_batch_bytes + b'"}]}'
    assert (await post_json(api, queue, batch)).status_code == 413
    assert await api.read(queue) == []


async def call_with_body_cut_off(api: Api, path: str, headers: dict[str, str], sent: bytes,
                                 length: int | None) -> list[dict[str, Any]]:  # fmt: skip
    """Call the app as an ASGI server would when the client sends ``sent`` of a body of
    ``length`` bytes (None: chunked) and then goes away; the messages the app sent back."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": raw,
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 12345),
    }  # fmt: skip
    events: list[dict[str, Any]] = [
        {"type": "http.request", "body": sent, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent_back: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent_back.append(message)

    await api.http.app(scope, receive, send)
    return sent_back


@pytest.mark.parametrize("length", [1000, None], ids=["content-length", "chunked"])
async def test_a_body_cut_off_by_a_disconnect_stores_nothing(api: Api, length: int | None) -> None:
    queue = await api.mkq()
    path = f"/v1/queuey/{queue}"
    raw = await call_with_body_cut_off(api, path, AUTH, b"half a message", length)
    assert raw[0]["status"] == 408
    batch = await call_with_body_cut_off(
        api, path, {**AUTH, "Content-Type": JSON}, b'{"messages": [{"body": "a"}]}', length
    )  # a batch cut off where it happens to be valid JSON
    assert batch[0]["status"] == 408
    assert await api.read(queue) == []
