"""Tokens (api.md Part 3): minting, what a token may do on named, unnamed and shared queues,
and every way a token is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import falcon.testing
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from queuey.core.clock import FakeClock
from queuey.service.tokens import Tokens, issuer_keys
from tests.api.conftest import AUTH, FORM, OTHER_AUTH, memory_app

SECRET = "s" * 32
OLD_SECRET = "o" * 32
ISSUER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUER_EC = ec.generate_private_key(ec.SECP256R1())


class Env:
    def __init__(self, http: falcon.testing.ASGIConductor, clock: FakeClock) -> None:
        self.http = http
        self.clock = clock

    async def mint(self, status: int = 201, auth: Mapping[str, str] = AUTH, **params: Any) -> Any:
        params.setdefault("subject", "user:ann")
        params.setdefault("queues", "shop")
        params.setdefault("rights", "read")
        result = await self.http.simulate_post(
            "/tokens/queuey", headers=dict(auth), body=urlencode(params), content_type=FORM
        )
        assert result.status_code == status, result.text
        return result.json

    async def token(self, **params: Any) -> str:
        token: str = (await self.mint(**params))["token"]
        return token

    async def mkq(self, name: str, **params: str) -> None:
        result = await self.http.simulate_post(
            "/v1/queuey", headers=AUTH, content_type=FORM,
            body=urlencode({"queue_name": name, **params}),
        )  # fmt: skip
        assert result.status_code == 201, result.text


def pem_file(tmp_path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "issuer.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = FakeClock()
    jwks = tmp_path / "issuer.json"
    jwks.write_text(
        json.dumps(
            {"keys": [json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ISSUER_EC.public_key()))]}
        )
    )
    issuers = {
        "queuey": [*issuer_keys(str(pem_file(tmp_path, ISSUER_RSA))), *issuer_keys(str(jwks))]
    }
    tokens = Tokens([SECRET, OLD_SECRET], clock, 86_400, issuers)
    async with falcon.testing.ASGIConductor(memory_app(clock, tokens)) as http:
        e = Env(http, clock)
        await e.mkq("shop")
        await e.mkq("shop-eu")
        await e.mkq("other")
        await e.mkq("shared", principles="user:ann")
        for name in ("shop", "shop-eu", "other", "shared"):
            result = await http.simulate_post(
                f"/v1/queuey/{name}", headers=AUTH, body="hello", content_type="text/plain"
            )
            assert result.status_code == 201
        yield e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def use(env: Env, right: str, queue: str, token: str) -> int:
    """The status of using ``right`` on ``queue`` with ``token``."""
    http, headers = env.http, bearer(token)
    if right == "read":
        result = await http.simulate_get(f"/v1/queuey/{queue}", headers=headers)
    elif right == "post":
        result = await http.simulate_post(
            f"/v1/queuey/{queue}", headers=headers, body="x", content_type="text/plain"
        )
    elif right == "claim":
        result = await http.simulate_post(f"/v1/queuey/{queue}/claims", headers=headers)
    else:
        result = await http.simulate_get(f"/v1/queuey/{queue}/stats", headers=headers)
    return result.status_code


OK = {"read": 200, "post": 201, "claim": 200, "stats": 200}


@pytest.mark.parametrize("right", ["read", "post", "claim", "stats"])
async def test_a_token_does_what_it_lists_on_the_queues_it_names(env: Env, right: str) -> None:
    token = await env.token(queues="shop*", rights=right)
    assert await use(env, right, "shop", token) == OK[right]
    assert await use(env, right, "shop-eu", token) == OK[right]  # the prefix
    assert await use(env, right, "other", token) == 403  # not named
    others = [r for r in OK if r != right]
    for other in others:  # a right it does not list
        assert await use(env, other, "shop", token) == 403


@pytest.mark.parametrize("right", ["read", "post", "claim", "stats"])
async def test_a_queue_shared_with_the_subject_gives_a_principals_rights(
    env: Env, right: str
) -> None:
    token = await env.token(queues="shop", rights="read")
    expected = 403 if right == "post" else OK[right]  # principals never post
    assert await use(env, right, "shared", token) == expected
    stranger = await env.token(subject="user:bob", queues="shop", rights="read")
    assert await use(env, right, "shared", stranger) == 403


async def test_a_token_never_does_what_only_the_owner_does(env: Env) -> None:
    token = await env.token(queues="*", rights="read,post,claim,stream,stats")
    headers = bearer(token)
    http = env.http
    assert (await http.simulate_get("/v1/queuey", headers=headers)).status_code == 403
    result = await http.simulate_post(
        "/v1/queuey", headers=headers, body="queue_name=new", content_type=FORM
    )
    assert result.status_code == 403
    assert (await http.simulate_delete("/v1/queuey/shop", headers=headers)).status_code == 403
    result = await http.simulate_put(
        "/v1/queuey/shop", headers=headers, body="partitions=2", content_type=FORM
    )
    assert result.status_code == 403
    result = await http.simulate_post(
        "/tokens/queuey", headers=headers, body="subject=user:x&queues=a&rights=read",
        content_type=FORM,
    )  # fmt: skip
    assert result.status_code == 403
    assert result.json["error_msg"] == {"Forbidden": result.json["error_msg"]["Forbidden"]}


async def test_a_token_in_the_query_string_works_and_a_key_there_does_not(env: Env) -> None:
    token = await env.token()
    result = await env.http.simulate_get("/v1/queuey/shop", params={"token": token})
    assert result.status_code == 200
    assert [m["body"] for m in result.json["messages"]] == ["hello"]
    result = await env.http.simulate_get("/v1/queuey/shop", params={"token": AUTH["Authorization"]})
    assert result.status_code == 401
    assert "InvalidToken" in result.json["error_msg"]


async def test_minting_is_for_the_owner_only(env: Env) -> None:
    await env.mint(401, auth={})
    await env.mint(403, auth=OTHER_AUTH)
    minted = await env.mint()
    assert set(minted) == {"status", "token", "expires"}
    assert minted["expires"] == int(env.clock.time_ns() // 10**9) + 3600


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"subject": "ann"}, "subject"),
        ({"subject": "app:queuey"}, "subject"),
        ({"queues": ""}, "queues"),
        ({"queues": "bad name"}, "queues"),
        ({"rights": "read,delete"}, "rights"),
        ({"rights": ""}, "rights"),
        ({"ttl": "0"}, "ttl"),
        ({"ttl": "86401"}, "ttl"),
        ({"ttl": "abc"}, "ttl"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_minting_refuses_bad_parameters_naming_the_field(
    env: Env, params: dict[str, Any], field: str
) -> None:
    answer = await env.mint(400, **params)
    assert set(answer["error_msg"]) == {field}


async def test_an_expired_token_is_invalid(env: Env) -> None:
    token = await env.token(ttl="60")
    assert await use(env, "read", "shop", token) == 200
    env.clock.advance(61)
    result = await env.http.simulate_get("/v1/queuey/shop", headers=bearer(token))
    assert result.status_code == 401
    assert set(result.json["error_msg"]) == {"InvalidToken"}


async def test_tokens_signed_with_any_configured_secret_are_accepted(env: Env) -> None:
    now = env.clock.time_ns() // 10**9
    claims = {"aud": "queuey", "sub": "user:ann", "queues": ["shop"], "rights": ["read"],
              "exp": now + 60}  # fmt: skip
    old = jwt.encode(claims, OLD_SECRET, algorithm="HS256")
    assert await use(env, "read", "shop", old) == 200
    retired = jwt.encode(claims, "r" * 32, algorithm="HS256")
    assert await use(env, "read", "shop", retired) == 401


def claims_of(env: Env, **changes: Any) -> dict[str, Any]:
    now = env.clock.time_ns() // 10**9
    return {"aud": "queuey", "sub": "user:ann", "queues": ["shop"], "rights": ["read"],
            "exp": now + 60, **changes}  # fmt: skip


async def test_forged_none_and_foreign_tokens_are_invalid(env: Env) -> None:
    token = await env.token()
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps(claims_of(env, queues=["*"], rights=["read", "post"])).encode()
    ).decode()
    unsigned = jwt.encode(claims_of(env), "", algorithm="none")
    other_app = jwt.encode(claims_of(env, aud="notifications"), SECRET, algorithm="HS256")
    no_audience = jwt.encode({k: v for k, v in claims_of(env).items() if k != "aud"}, SECRET)
    for bad in (
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{signature[:-4]}AAAA",
        unsigned,
        other_app,
        no_audience,
        "not-a-token",
    ):
        result = await env.http.simulate_get("/v1/queuey/shop", headers=bearer(bad))
        assert result.status_code == 401, bad
        assert set(result.json["error_msg"]) == {"InvalidToken"}


async def test_a_token_of_one_application_on_another_applications_url(env: Env) -> None:
    token = await env.token(queues="*")
    result = await env.http.simulate_get("/v1/notifications/anything", headers=bearer(token))
    assert result.status_code == 401
    assert set(result.json["error_msg"]) == {"InvalidToken"}


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
async def test_tokens_of_the_applications_identity_service(env: Env, kind: str) -> None:
    key = ISSUER_RSA if kind == "RS256" else ISSUER_EC
    token = jwt.encode(claims_of(env), key, algorithm=kind)
    assert await use(env, "read", "shop", token) == 200
    assert await use(env, "read", "other", token) == 403
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = jwt.encode(claims_of(env), stranger, algorithm="RS256")
    assert await use(env, "read", "shop", foreign) == 401


async def test_a_token_in_the_url_of_a_stream_needs_its_stream_right(env: Env) -> None:
    streams = await env.token(queues="shop", rights="stream")
    reads = await env.token(queues="shop", rights="read")
    for token, status in ((streams, 200), (reads, 403), ("forged", 401)):
        result = await env.http.simulate_head("/v1/queuey/shop/stream", params={"token": token})
        assert result.status_code == status, token
    round_robin = {"token": streams, "mode": "roundrobin"}
    result = await env.http.simulate_head("/v1/queuey/shop/stream", params=round_robin)
    assert result.status_code == 403  # round-robin needs claim too
