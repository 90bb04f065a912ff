"""The key file: generated once, read back, refused when it holds no key."""

from __future__ import annotations

from pathlib import Path

import pytest

from queuey.application_key import KeyFileError, bad_character, stored_key
from queuey.original_config import is_original_section, original_sections_warning


def test_a_key_is_generated_once_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "application_key"
    warnings: list[str] = []
    key, generated = stored_key(path, warnings)
    assert len(key) == 32 and bad_character(key) is None and generated
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert stored_key(path, warnings) == (key, False)
    assert warnings == []


def test_a_file_that_holds_no_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "application_key"
    path.write_text("not a key\n")
    with pytest.raises(KeyFileError, match="does not hold a key"):
        stored_key(path, [])


def test_a_readable_key_file_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "application_key"
    path.write_text("0123456789abcdef\n")
    path.chmod(0o644)
    warnings: list[str] = []
    assert stored_key(path, warnings) == ("0123456789abcdef", False)
    assert warnings == [f"{path} can be read by other users; run: chmod 600 {path}"]


def test_key_characters() -> None:
    assert bad_character("abc;d") == ";"
    assert bad_character("a b") == " "
    assert bad_character("Ab1-_.~") is None


def test_the_original_sections_are_recognised() -> None:
    assert [is_original_section(name) for name in ("metlog", "app:main", "storage")] == [
        True,
        True,
        False,
    ]
    assert original_sections_warning(["global", "app:main"]).startswith(
        "config: sections [global], [app:main] are the original Queuey's"
    )
