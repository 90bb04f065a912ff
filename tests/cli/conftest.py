from __future__ import annotations

import io
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from queuey.cli import main
from tests.client.servers import running_server
from tests.e2e.conftest import KEY, Server


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return orjson.loads(self.out)


Run = Callable[..., Result]


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the CLI tests."""
    with running_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def cli(server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``queuey ARGS`` through ``queuey.cli.main``, against the server (QUEUEY_URL and
    QUEUEY_KEY), with ``stdin`` as its standard input."""
    monkeypatch.setenv("QUEUEY_URL", f"{server.url}/v1/queuey")
    monkeypatch.setenv("QUEUEY_KEY", KEY)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapped cells to match across

    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse: usage errors and --help
            code = int(exit.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"
