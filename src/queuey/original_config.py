"""The original Queuey's configuration files: what Queuey recognises in them and ignores.

The original ran under Paste and Pyramid with metlog and logging sections; a file written for
it still loads, with one warning naming those sections. (Its storage class names are
accepted as back-end names: :data:`queuey.storage.ALIASES`.)"""

from __future__ import annotations

from collections.abc import Sequence

ORIGINAL_SECTIONS = (
    "global", "metlog", "ipauth", "smtp", "cef", "loggers", "handlers", "formatters",
)  # fmt: skip
ORIGINAL_PREFIXES = (
    "app:", "server:", "pipeline:", "filter:", "host:", "logger_", "handler_", "formatter_",
)  # fmt: skip


def is_original_section(name: str) -> bool:
    return name in ORIGINAL_SECTIONS or name.startswith(ORIGINAL_PREFIXES)


def original_sections_warning(names: Sequence[str]) -> str:
    sections = ", ".join(f"[{name}]" for name in names)
    return (
        f"config: sections {sections} are the original Queuey's (Paste, Pyramid, metlog, "
        "logging) and are not used by Queuey; ignored"
    )
