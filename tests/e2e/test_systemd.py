"""deploy/queuey.service: systemd accepts it, and its ExecStart and KillSignal work with
``queuey serve`` as the unit runs them (paths and port substituted)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from queuey.client import Client
from tests.e2e.conftest import KEY, free_port, stop_process, write_config

pytestmark = pytest.mark.e2e

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "queuey.service"
INSTALLED = "/opt/queuey/.venv/bin/queuey"
QUEUEY = str(Path(sys.executable).with_name("queuey"))  # this checkout's entry point


def service_section(text: str) -> configparser.SectionProxy:
    unit = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    return unit["Service"]


def test_the_unit_runs_queuey_as_its_own_user_hardened() -> None:
    service = service_section(UNIT.read_text())
    program, command, *_ = shlex.split(service["ExecStart"])
    assert (program, command) == (INSTALLED, "serve")
    assert service["User"] == service["Group"] == "queuey"
    assert service["StateDirectory"] == "queuey"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    for option in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # no systemd here: the ExecStart program must at least exist
        assert Path(QUEUEY).is_file()
        return
    unit = tmp_path / "queuey.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, QUEUEY))
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert (verified.returncode, verified.stderr) == (0, "")
    # The same check fails on a bad value: it is a real one.
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=maybe"))
    broken = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert "NoNewPrivileges" in broken.stderr or "boolean" in broken.stderr


def test_exec_start_serves_and_the_kill_signal_stops_it_cleanly(tmp_path: Path) -> None:
    service = service_section(UNIT.read_text())
    port = free_port()
    command = (
        service["ExecStart"]
        .replace(INSTALLED, QUEUEY)
        .replace("/etc/queuey/queuey.ini", str(write_config(tmp_path)))
        .replace("--port 5000", f"--port {port}")
    )
    assert f"--port {port}" in command
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "journal").open("w")
    process = subprocess.Popen(shlex.split(command), cwd=tmp_path, stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline
            try:
                if httpx.get(f"{url}/__heartbeat__", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with Client(f"{url}/v1/queuey", KEY) as client:
            client.create_queue("kept")
            client.post("kept", "posted before the stop")
            stream = client.stream("kept")  # open while it stops: ended, not waited for
            stopped_at = time.monotonic()
            kill = signal.Signals[service["KillSignal"]]
            code = stop_process(process, kill)
            stream.close()
        timeout = float(service["TimeoutStopSec"])
        assert code == 0  # a clean exit: Restart=on-failure does not restart it
        assert time.monotonic() - stopped_at < timeout
    finally:
        stop_process(process, signal.SIGKILL)
        log.close()
    assert "Traceback" not in (tmp_path / "journal").read_text()
