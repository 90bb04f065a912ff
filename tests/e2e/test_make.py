"""``make serve`` as a reader runs it: Ctrl-C stops it without a make error."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
]

ROOT = Path(__file__).parents[2]


def test_ctrl_c_stops_make_serve_without_a_make_error(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "make.log"
    with log.open("w") as output:
        # Its own session, as a terminal's foreground job: Ctrl-C signals the whole group.
        make = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(ROOT), "-o", "install", "serve",
             f"ARGS=--port {port}"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "QUEUEY_CONFIG": "", "QUEUEY_STORAGE_BACKEND": "memory"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/__lbheartbeat__").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"make serve did not answer:\n{log.read_text()}")
        os.killpg(make.pid, signal.SIGINT)
        # make ends by the same signal (a shell prints nothing for that); the server ended well.
        assert make.wait(timeout=20) in (0, -signal.SIGINT)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    printed = log.read_text()
    assert "Finished server process" in printed
    assert "make: ***" not in printed and "Error" not in printed
