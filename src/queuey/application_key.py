"""The generated application key: kept in a file so that it survives restarts."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


class KeyFileError(Exception):
    """The key file cannot be used; the message says why and what to do."""


def new_key(size: int = 16) -> str:
    """A random key of ``size`` bytes, written in hex."""
    return secrets.token_hex(size)


def bad_character(key: str) -> str | None:
    """The first character a key may not hold: keys are printable ASCII without spaces,
    commas, quotes or ``;``."""
    return next((c for c in key if not 33 <= ord(c) <= 126 or c in ';,"'), None)


def stored_key(path: Path, warnings: list[str], make: Callable[[], str] = new_key) -> str:
    """The key kept in ``path``, generated (mode 0600) if there is none; concurrent first
    starts agree on one key. A warning is added when others can read the file.

    Raises:
        KeyFileError: the key cannot be read or written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = _read_key(path)
        while key is None:
            key = _create_key(path, make()) or _read_key(path)
        if os.name == "posix" and path.stat().st_mode & 0o077:
            warnings.append(f"{path} can be read by other users; run: chmod 600 {path}")
    except OSError as error:
        raise KeyFileError(f"cannot keep the application key in {path}: {error}") from None
    return key


def _read_key(path: Path) -> str | None:
    # An empty file is one a concurrent start has just created without hard links (below).
    for _ in range(100):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            text = "\0"
        key = text.strip()
        if key:
            if bad_character(key) is not None:
                raise KeyFileError(f"{path} does not hold a key; delete it to generate a new one")
            return key
        time.sleep(0.01)
    raise KeyFileError(f"{path} is empty; delete it to generate a new application key")


def _create_key(path: Path, key: str) -> str | None:
    """Write ``key`` where concurrent starts see all of it or nothing; None if another won."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return None
        except OSError:  # no hard links on this file system
            return _create_exclusive(path, key)
    finally:
        os.unlink(temporary)
    _sync_directory(path.parent)
    return key


def _create_exclusive(path: Path, key: str) -> str | None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
        file.flush()
        os.fsync(file.fileno())
    return key


def _sync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
