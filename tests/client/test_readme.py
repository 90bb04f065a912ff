"""The README's "Python client" and "Command line" sections, run against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import KEY

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


def block(section: str, language: str) -> str:
    """The first ``language`` code block after the heading ``section``."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"^## {section}\n.*?^```{language}\n(.*?)^```", text, re.M | re.S)
    assert found, f"no {language} block under {section}"
    return found.group(1).replace("http://127.0.0.1:5000/v1/queuey", "$QUEUEY_URL")


def environment(url: str) -> dict[str, str]:
    return {**os.environ, "QUEUEY_URL": url, "QUEUEY_KEY": KEY}


def test_the_python_client_example_runs(url: str, tmp_path: Path) -> None:
    code = block("Python client", "python").replace('"$QUEUEY_URL"', 'os.environ["QUEUEY_URL"]')
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment(url),
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "working on resize 3"


def test_the_command_line_example_runs_line_by_line(url: str) -> None:
    claim_ids: list[str] = []
    for line in block("Command line", "sh").splitlines():
        if line.startswith(("export ", "Q=")):
            continue  # the environment below
        command = line.replace("seq 1 100000", "seq 1 100").replace("<claim_id>", "{}")
        command = command.format(*claim_ids[: command.count("{}")])
        result = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=60,
            env={**environment(url), "Q": str(Path(sys.executable).with_name("queuey"))},
        )  # fmt: skip
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        if " claim " in command:
            claim_ids = [message["claim_id"] for message in orjson.loads(result.stdout)]
    assert len(claim_ids) == 2
