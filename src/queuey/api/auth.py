"""Credentials → the caller: ``Authorization: Application <key>`` (the application itself),
``Authorization: Bearer <token>`` or ``token=<token>`` in the query string (a token's grant).
An application key is never taken from a URL."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

import falcon.asgi

from queuey.core.errors import InvalidApplicationKey, InvalidToken
from queuey.core.models import Caller
from queuey.service.tokens import Tokens

ANONYMOUS = Caller(None)


class KeyRing:
    """Finds the application of a key in constant time.

    Keys are looked up by their SHA-256 digest, so the lookup's timing depends on the digest,
    not on how many leading characters of a real key were guessed; the final comparison is
    ``hmac.compare_digest``.
    """

    def __init__(self, application_keys: Mapping[str, Sequence[str]]) -> None:
        self._keys: dict[bytes, tuple[bytes, Caller]] = {}
        for app, keys in application_keys.items():
            caller = Caller(app)
            for key in keys:
                raw = key.encode()
                self._keys[hashlib.sha256(raw).digest()] = (raw, caller)

    def caller(self, header: str | None) -> Caller:
        """The caller named by an Authorization header (several credentials may be separated
        by ``;``; other schemes are ignored). An unknown application key raises."""
        if not header:
            return ANONYMOUS
        found = ANONYMOUS
        for part in header.split(";"):
            scheme, _, key = part.strip().partition(" ")
            if scheme.lower() != "application":
                continue
            raw = key.strip().encode()
            entry = self._keys.get(hashlib.sha256(raw).digest())
            if entry is None or not hmac.compare_digest(entry[0], raw):
                raise InvalidApplicationKey()
            if found is ANONYMOUS:
                found = entry[1]
        return found


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` credential, if the header has one."""
    for part in (header or "").split(";"):
        scheme, _, token = part.strip().partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
    return None


def authenticate(
    req: falcon.asgi.Request, keys: KeyRing, tokens: Tokens, app: str | None
) -> Caller:
    """The caller of a request to ``app``'s URLs (``app`` None: a URL of no application, where
    a token means nothing): :func:`caller_of` its ``Authorization`` header and ``token=``."""
    return caller_of(req.auth, req.get_param("token"), keys, tokens, app)


def caller_of(
    authorization: str | None, token: str | None, keys: KeyRing, tokens: Tokens, app: str | None
) -> Caller:
    """The caller named by an ``Authorization`` header (an application key, or a Bearer token)
    or else by a ``token=`` query parameter (a token that is sent must be valid, even beside an
    application key). Every route that takes credentials calls this: the
    resources through :class:`queuey.api.resource.Resource`, the WebSocket stream directly.

    Raises:
        InvalidApplicationKey: an unknown application key.
        InvalidToken: a token that is not valid for ``app``.
    """
    caller = keys.caller(authorization)
    token = bearer_token(authorization) or token
    if token is None:
        return caller
    if app is None:
        raise InvalidToken()
    grant = tokens.verify(token, app)  # a token that is sent must be valid, key or not
    return caller if caller.app is not None else Caller(None, grant)
