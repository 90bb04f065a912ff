"""Tokens: signed, expiring JWTs that act for an application with only the rights they list.

Queuey mints HS256 tokens with the first of its secrets and accepts any of them, so a secret can
be rotated by putting the new one first. An application's own identity service may sign tokens
too (RS256 or ES256) with keys configured for that application. Every token names its
application as its audience; a token is only ever checked against the application of the URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from queuey.core.clock import Clock
from queuey.core.errors import InvalidToken
from queuey.core.models import Grant
from queuey.core.validation import Errors
from queuey.service.rights import valid_name

ISSUER = "queuey"
RIGHTS = ("read", "post", "claim", "stream", "stats")
DEFAULT_TTL = 3600
# The algorithms of identity services, and the kind of key each verifies with.
ISSUER_ALGORITHMS: dict[str, type] = {
    "RS256": rsa.RSAPublicKey,
    "ES256": ec.EllipticCurvePublicKey,
}
TOKEN_PARAMS = frozenset({"subject", "queues", "rights", "ttl"})
_SUBJECT = re.compile(r"user:[^\s,:]{1,256}|bid:[^\s,@]+@[^\s,@]+")
_REQUIRED = ("exp", "aud", "sub")

# The verification keys of an application's identity service.
IssuerKeys = Sequence[Any]


class Tokens:
    def __init__(
        self,
        secrets: Sequence[str],
        clock: Clock,
        max_ttl: int,
        issuers: Mapping[str, IssuerKeys] | None = None,
    ) -> None:
        if not secrets:
            raise ValueError("at least one token secret is needed")
        self._secrets = tuple(secrets)
        self._clock = clock
        self.max_ttl = max_ttl
        self._issuers = dict(issuers or {})

    def mint(self, app: str, params: Mapping[str, object], max_name_length: int) -> tuple[str, int]:
        """A token of ``app`` for the subject, queues, rights and ttl of ``params``, and the
        epoch second it expires at.

        Raises:
            InvalidRequest: a parameter is missing or invalid (keyed by its name).
        """
        errors = Errors()
        for name in sorted(set(params) - TOKEN_PARAMS):
            errors[name] = "Unknown parameter"
        subject = params.get("subject")
        if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
            errors["subject"] = "must be a principal: user:<id> or bid:<email>"
        queues = _list(params.get("queues"))
        if not queues or not all(_queue_pattern(q, max_name_length) for q in queues):
            errors["queues"] = (
                "must be a comma list of queue names; a trailing * matches names that start "
                "with what precedes it"
            )
        rights = _list(params.get("rights"))
        if not rights or not set(rights) <= set(RIGHTS):
            errors["rights"] = f"must be a comma list of {', '.join(RIGHTS)}"
        ttl = errors.integer("ttl", params.get("ttl"), DEFAULT_TTL, 1, self.max_ttl)
        errors.raise_if_any()
        now = self._clock.time_ns() // 1_000_000_000
        claims = {
            "iss": ISSUER,
            "aud": app,
            "sub": subject,
            "queues": queues,
            "rights": rights,
            "iat": now,
            "exp": now + ttl,
        }
        return jwt.encode(claims, self._secrets[0], algorithm="HS256"), now + ttl

    def verify(self, token: str, app: str) -> Grant:
        """What ``token`` grants on ``app``.

        Raises:
            InvalidToken: it is expired, forged, unverifiable, or not ``app``'s.
        """
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise InvalidToken() from None
        if algorithm == "HS256":
            keys: Sequence[Any] = self._secrets
            algorithms = ["HS256"]
        elif algorithm in ISSUER_ALGORITHMS:
            kind = ISSUER_ALGORITHMS[algorithm]
            keys = [key for key in self._issuers.get(app, ()) if isinstance(key, kind)]
            algorithms = [algorithm]
        else:  # "none" and anything else
            raise InvalidToken()
        now = self._clock.time_ns() / 1e9
        for key in keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=algorithms, audience=app,
                    options={"require": list(_REQUIRED), "verify_exp": False},
                )  # fmt: skip
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                raise InvalidToken() from None
            return _grant(claims, app, now)
        raise InvalidToken()


def _grant(claims: Mapping[str, Any], app: str, now: float) -> Grant:
    """Expiry is checked against Queuey's clock, so that tests can move time."""
    exp, subject = claims.get("exp"), claims.get("sub")
    queues, rights = claims.get("queues", []), claims.get("rights", [])
    if not isinstance(exp, int | float) or exp <= now:
        raise InvalidToken()
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise InvalidToken()
    if not _strings(queues) or not _strings(rights):
        raise InvalidToken()
    return Grant(app, subject, tuple(queues), frozenset(rights) & frozenset(RIGHTS), exp)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _list(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def _queue_pattern(pattern: str, max_name_length: int) -> bool:
    if pattern == "*":
        return True
    name = pattern.removesuffix("*")
    return valid_name(name, max_name_length)


def issuer_keys(path: str) -> list[Any]:
    """The verification keys in a PEM file (one public key) or a JWKS file.

    Raises:
        ValueError: the file holds neither.
    """
    with open(path, "rb") as file:
        data = file.read()
    if data.lstrip().startswith(b"{"):
        try:
            return [key.key for key in jwt.PyJWKSet.from_json(data.decode()).keys]
        except (jwt.PyJWTError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a usable JWKS file: {error}") from None
    try:
        return [serialization.load_pem_public_key(data)]
    except ValueError as error:
        raise ValueError(f"{path} is not a PEM public key: {error}") from None
