"""The app's side of the HTTP edge: multipart bodies, methods Falcon does not know, integer-like
parameters in other scripts, and large answers handed to the server in slices."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from queuey.api.asgi import SEND_SLICE
from tests.api.conftest import AUTH, Api

BOUNDARY = "queueyboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*parts: tuple[str | None, bytes]) -> bytes:
    chunks = []
    for name, value in parts:
        disposition = "form-data" + (f'; name="{name}"' if name is not None else "")
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n"
        chunks.append(head.encode() + value + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


async def call(
    api: Api, method: str, path: str, headers: dict[str, str], body: bytes, piece: int
) -> tuple[list[dict[str, Any]], int]:
    """Call the app as an ASGI server does, the body sent ``piece`` bytes at a time with no
    Content-Length (chunked); the messages sent back and how many body bytes the app took."""
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 12345),
    }  # fmt: skip
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)] or [b""]
    taken = 0
    sent_back: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if not pieces:
            return {"type": "http.disconnect"}
        chunk = pieces.pop(0)
        taken += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pieces)}

    async def send(message: dict[str, Any]) -> None:
        sent_back.append(message)

    await api.http.app(scope, receive, send)
    return sent_back, taken


@pytest.mark.parametrize("method,path", [("POST", "/v1/queuey"), ("PUT", "/v1/queuey/q")])
async def test_a_multipart_part_without_a_name_is_400(api: Api, method: str, path: str) -> None:
    await api.mkq(queue_name="q")
    result = await api.http.simulate_request(
        method, path, headers={**AUTH, "Content-Type": MULTIPART},
        body=multipart(("partitions", b"2"), (None, b"x")),
    )  # fmt: skip
    assert result.status_code == 400, result.text
    assert result.json["error_msg"] == {"body": "Every multipart/form-data part needs a name"}


async def test_a_multipart_body_over_the_limit_is_413_however_it_is_sent(api: Api) -> None:
    limit = api.service.limits.max_message_bytes
    # Parts under the multipart parser's own buffer limit, that a last part makes valid.
    parts = [("queue_name", b"x" * 60_000)] * (limit // 60_000 + 2) + [("queue_name", b"mp")]
    body = multipart(*parts)
    headers = {**AUTH, "Content-Type": MULTIPART}
    with_length = await api.http.simulate_post("/v1/queuey", headers=headers, body=body)
    assert with_length.status_code == 413, with_length.text
    assert list(with_length.json["error_msg"]) == ["body"]
    sent_back, taken = await call(api, "POST", "/v1/queuey", headers, body, 16_384)
    assert sent_back[0]["status"] == 413
    assert taken <= limit + 16_384  # refused by the read that crossed the limit
    listed = await api.http.simulate_get("/v1/queuey", headers=AUTH)
    assert listed.json["queues"] == []
    # Under the limit the same encoding works.
    small = multipart(("queue_name", b"x" * 1000), ("queue_name", b"mp"))
    created = await api.http.simulate_post("/v1/queuey", headers=headers, body=small)
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("path", ["/v1/queuey", "/v1/queuey/q", "/v1/queuey/q/"])
async def test_a_method_falcon_does_not_know_is_a_405_like_any_unsupported_one(
    api: Api, path: str
) -> None:
    await api.mkq(queue_name="q")
    patch = await api.http.simulate_request("PATCH", path, headers=AUTH)
    assert patch.status_code == 405
    for method in ("PURGE", "BREW"):
        result = await api.http.simulate_request(method, path, headers=AUTH)
        assert result.status_code == 405, result.text
        assert result.headers["allow"] == patch.headers["allow"]
        assert result.json == patch.json
    nowhere = await api.http.simulate_request("PURGE", "/nowhere")
    assert nowhere.status_code == 404
    assert nowhere.json["status"] == "error"


async def test_since_in_digits_of_other_scripts_is_400(api: Api) -> None:
    queue = await api.mkq()
    await api.post(queue, "hello")
    for since in ("١٧٩٦", "١٧٩٦.٥", "1796.٥"):
        result = await api.http.simulate_get(
            f"/v1/queuey/{queue}", params={"since": since}, headers=AUTH
        )
        assert result.status_code == 400, (since, result.text)
        assert list(result.json["error_msg"]) == ["since"]


async def test_a_large_answer_goes_to_the_server_in_slices(api: Api) -> None:
    queue = await api.mkq()
    body = "x" * 100_000
    for _ in range(5):
        await api.post(queue, body)
    sent_back, _ = await call(api, "GET", f"/v1/queuey/{queue}", AUTH, b"", 1)
    pieces = [m for m in sent_back if m["type"] == "http.response.body"]
    assert len(pieces) > 5
    assert all(len(m["body"]) <= SEND_SLICE for m in pieces)
    assert all(m["more_body"] for m in pieces[:-1]) and not pieces[-1].get("more_body")
    answer = orjson.loads(b"".join(m["body"] for m in pieces))
    assert [m["body"] for m in answer["messages"]] == [body] * 5
