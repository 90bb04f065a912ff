"""Application keys: ``Authorization: Application <key>`` → the calling application."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from queuey.core.errors import InvalidApplicationKey
from queuey.core.models import Caller

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
