"""The OpenAPI document (src/queuey/api/openapi.yaml, also docs/openapi.yaml) is the API as
implemented: every route and method of the app is in it and nothing else, every status code
api.md gives is documented, and it is served at /openapi.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from falcon import inspect

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.api.aweq import AweQ
from queuey.api.frontend import Access, FrontEnd
from queuey.api.openapi import document
from queuey.api.restmq import RestMQ
from queuey.core.clock import FakeClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage.memory import MemoryStorage
from tests.api.conftest import KEYS, Api

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "head", "post", "put", "patch", "delete")


def app_operations(front_ends: bool = False) -> set[tuple[str, str]]:
    """(path, method) of every responder the app's resources implement themselves (Falcon's
    own OPTIONS and 405 responders are left out), with the compatibility front ends on or
    off (their default)."""
    storage = MemoryStorage()
    service = QueueService(storage, KEYS.keys(), FakeClock(), Notifier(storage, POLL_INTERVAL))
    keys = KeyRing(KEYS)
    access = Access("queuey", keys)
    on: list[FrontEnd] = [RestMQ(service, access), AweQ(service, access, "work")]
    app = create_app(service, keys, front_ends=on if front_ends else [])
    return {
        (route.path, method.method.lower())
        for route in inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }


def documented_operations() -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = document()["paths"]
    return {(path, method) for path, item in paths.items() for method in item if method in METHODS}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref``."""
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    assert app_operations() == documented_operations()


# The compatibility front ends (api.md Part 4) are left out of the document on purpose: they
# serve other systems' APIs, off by default, for those systems' existing clients, which never
# read an OpenAPI document; what they do is in docs/api.md Part 4. A generated
# client of the document talks to the Queuey API only.
FRONT_END_OPERATIONS = {
    ("/send-message", "post"), ("/receive-message", "get"), ("/delete-message/{key}", "delete"),
    ("/get-stats", "get"), ("/get-stats", "head"),
    ("/q/{queue}", "get"), ("/q/{queue}", "post"), ("/q/{queue}", "delete"), ("/c/{queue}", "get"),
    ("/p/{queue}", "get"), ("/p/{queue}", "head"), ("/p/{queue}", "post"),
    ("/control", "get"), ("/control", "head"),
    ("/control/{queue}", "get"), ("/control/{queue}", "head"), ("/control/{queue}", "post"),
    ("/stats", "get"), ("/stats", "head"), ("/stats/{queue}", "get"), ("/stats/{queue}", "head"),
    ("/queue", "post"),
}  # fmt: skip


def test_with_the_front_ends_on_only_their_routes_are_left_out() -> None:
    operations = app_operations(front_ends=True)

    assert operations - documented_operations() == FRONT_END_OPERATIONS
    assert documented_operations() <= operations


def test_docs_openapi_is_the_served_document() -> None:
    docs = ROOT / "docs" / "openapi.yaml"
    package = ROOT / "src" / "queuey" / "api" / "openapi.yaml"
    assert docs.read_bytes() == package.read_bytes()


def test_the_document_is_openapi_3_1_with_application_key_auth() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    scheme = doc["components"]["securitySchemes"]["applicationKey"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}
    assert doc["security"] == [{"applicationKey": []}, {"bearerToken": []}]
    bearer = doc["components"]["securitySchemes"]["bearerToken"]
    assert bearer == {**bearer, "type": "http", "scheme": "bearer"}


# What api.md gives for each operation, beyond the success status.
COMMON = {"400", "401", "403", "404", "503"}
WITH_BODY = COMMON | {"408", "413"}
EXPECTED_STATUSES: dict[tuple[str, str], set[str]] = {
    ("/__heartbeat__", "get"): {"200", "503"},
    ("/__lbheartbeat__", "get"): {"200"},
    ("/__version__", "get"): {"200"},
    ("/openapi.json", "get"): {"200"},
    ("/", "get"): {"302"},
    ("/console", "get"): {"200", "302", "304"},
    ("/console/{asset}", "get"): {"200", "304", "404"},
    ("/tokens/{app}", "post"): {"201"} | WITH_BODY,
    ("/v1/{app}", "get"): {"200"} | COMMON,
    ("/v1/{app}", "post"): {"201", "409"} | WITH_BODY,
    ("/v1/{app}/{queue}", "get"): {"200", "429"} | COMMON,
    ("/v1/{app}/{queue}", "post"): {"201", "429"} | WITH_BODY,
    ("/v1/{app}/{queue}", "put"): {"200"} | WITH_BODY,
    ("/v1/{app}/{queue}", "delete"): {"200"} | COMMON,
    ("/v1/{app}/{queue}/{ids}", "get"): {"200"} | COMMON,
    ("/v1/{app}/{queue}/{ids}", "put"): {"200", "429"} | WITH_BODY,
    ("/v1/{app}/{queue}/{ids}", "delete"): {"200"} | COMMON,
    ("/v1/{app}/{queue}/claims", "post"): {"200", "429"} | WITH_BODY,
    ("/v1/{app}/{queue}/claims/{claim_ids}", "delete"): {"200", "409"} | COMMON,
    ("/v1/{app}/{queue}/claims/{claim_ids}", "patch"): {"200", "409"} | WITH_BODY,
    ("/v1/{app}/{queue}/stats", "get"): {"200"} | COMMON,
    ("/v1/{app}/{queue}/messages", "delete"): {"200"} | COMMON,
    ("/v1/{app}/{queue}/redrive", "post"): {"200"} | WITH_BODY,
    ("/v1/{app}/{queue}/stream", "get"): {"200", "429"} | COMMON,
}


def test_every_operation_documents_the_statuses_of_api_md() -> None:
    paths = document()["paths"]
    for (path, method), statuses in EXPECTED_STATUSES.items():
        assert set(paths[path][method]["responses"]) == statuses, (path, method)
        if method == "get":  # HEAD answers as GET does
            assert set(paths[path]["head"]["responses"]) == statuses, path
    gets = {(path, "get") for path, item in paths.items() if "get" in item}
    documented = {op for op in documented_operations() if op[1] != "head"}
    assert documented == set(EXPECTED_STATUSES) and gets <= documented


def test_error_responses_use_the_error_schema_and_their_headers() -> None:
    responses = document()["components"]["responses"]
    error = {"$ref": "#/components/schemas/Error"}
    for name in ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "TooLarge",
                 "Unavailable", "Timeout"):  # fmt: skip
        assert responses[name]["content"]["application/json"]["schema"] == error, name
    assert responses["Unauthorized"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["Unavailable"]["headers"]["Retry-After"]["required"] is True
    assert responses["TooManyRequests"]["headers"]["Retry-After"]["required"] is True
    for name in ("ForbiddenOrQuota", "TooManyRequests"):  # the error, with quota and limit
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema["allOf"][0] == error, name
        assert set(schema["allOf"][1]["properties"]) == {"quota", "limit"}, name
    schema = resolve(error)
    assert schema["required"] == ["status", "error_msg"]


async def test_the_document_is_served_as_json_without_credentials(api: Api) -> None:
    result = await api.http.simulate_get("/openapi.json")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert result.json == document()
    assert (await api.http.simulate_head("/openapi.json")).status_code == 200
