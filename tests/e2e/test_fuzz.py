"""A bounded fuzz of the whole API from its OpenAPI document (``make fuzz`` runs a longer one):
no 5xx, and every response is one the document gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e import fuzz
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e


def test_fuzzing_from_the_openapi_document_finds_no_server_error_or_mismatch(
    tmp_path: Path,
) -> None:
    config = tmp_path / "queuey.ini"
    config.write_text(fuzz.config_text(tmp_path))
    server = start_server(tmp_path, ["--config", str(config)])
    try:
        seed = int(os.environ.get("QUEUEY_FUZZ_SEED", "1"))
        result = fuzz.run(server.url, tmp_path, max_examples=40, seed=seed)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in server.output()
