"""The installed ``queuey`` command (the ``queuey.cli:main`` entry point) in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import KEY, Server, free_port

pytestmark = pytest.mark.e2e

QUEUEY = str(Path(sys.executable).with_name("queuey"))


def queuey(
    server: Server, *argv: str, stdin: bytes = b"", **env: str
) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "QUEUEY_URL": f"{server.url}/v1/queuey", "QUEUEY_KEY": KEY}
    return subprocess.run(
        [QUEUEY, *argv], input=stdin, capture_output=True, timeout=60,
        env={**environment, **env},
    )  # fmt: skip


def test_bulk_post_shows_progress_on_a_terminal(server: Server, queue: str) -> None:
    assert queuey(server, "create", queue).returncode == 0
    lines = b"".join(b"message %d\n" % n for n in range(2000))
    result = queuey(server, "post", queue, "--batch-size", "300", stdin=lines, FORCE_COLOR="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == f"posted 2000 messages to {queue}"
    assert b"posted 2,000 messages" in result.stderr  # the progress bar's last state
    stats = orjson.loads(queuey(server, "stats", queue, "--json").stdout)
    assert stats["messages"] == 2000


def test_no_progress_bar_when_stderr_is_not_a_terminal(server: Server, queue: str) -> None:
    queuey(server, "create", queue)
    result = queuey(server, "post", queue, "--json", stdin=b"one\ntwo\n")
    assert (result.returncode, result.stderr) == (0, b"")
    assert orjson.loads(result.stdout) == {"posted": 2}


def test_exit_codes_reach_the_shell(server: Server) -> None:
    assert queuey(server, "read", "missing").returncode == 1
    assert queuey(server, "read").returncode == 2
    assert (
        queuey(server, "queues", QUEUEY_URL=f"http://127.0.0.1:{free_port()}/v1/queuey").returncode
        == 3
    )
