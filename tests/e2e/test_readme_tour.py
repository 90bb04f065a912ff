"""The README's "Try it" tour, pasted top to bottom into a shell against a fresh
``queuey serve`` (no configuration, as ``make serve`` runs it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
README_URL = "http://127.0.0.1:5000"
# Every curl of the tour answers its body, then its status on a line of its own.
CURL = "curl() { command curl -sS -w '\\n%{http_code}' \"$@\"; }\n"


def tour_commands() -> list[str]:
    """The commands of the sh blocks under "## Try it", continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Try it\n(.*?)^## ", text, re.M | re.S)
    assert section, "no Try it section"
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line)
    return commands


class Tour:
    """What the reader keeps from earlier answers: message ids and claim ids."""

    def __init__(self) -> None:
        self.ids: dict[str, list[tuple[int, str]]] = {}  # queue -> (partition, id), in order
        self.claims: list[str] = []

    def fill(self, command: str) -> str:
        queue = re.search(r"\$Q/(\w+)", command)
        posted = self.ids.get(queue.group(1) if queue else "", [])

        def by_partition(match: re.Match[str]) -> str:
            partition = int(match.group(1))
            return f"{partition}:{next(i for p, i in posted if p == partition)}"

        command = re.sub(r"(\d+):<id>", by_partition, command)
        command = command.replace("<id>", posted[0][1] if posted else "<id>")
        wanted = command.count("<claim_id>")
        given = self.claims[:wanted]
        if "-X DELETE" in command or "ttl=0" in command:  # acked or released: used up
            self.claims = self.claims[wanted:]
        for claim_id in given:
            command = command.replace("<claim_id>", claim_id, 1)
        assert "<" not in command.replace("<<", ""), f"unfilled placeholder: {command}"
        return command

    def learn(self, command: str, answer: Any) -> None:
        queue = re.search(r"\$Q/(\w+)", command)
        messages = answer.get("messages") if isinstance(answer, dict) else None
        if not messages:
            return
        if "/claims" in command:
            self.claims = [m["claim_id"] for m in messages]
        elif queue and "key" in messages[0]:
            self.ids.setdefault(queue.group(1), []).extend(
                (m["partition"], m["key"]) for m in messages
            )


def test_the_readme_tour_runs_as_pasted(tmp_path: Path) -> None:
    server = start_server(tmp_path, [], env={"QUEUEY_CONFIG": ""})
    try:
        tour, shell = Tour(), CURL
        commands = tour_commands()
        assert len(commands) > 25
        for line in commands:
            command = tour.fill(line.replace(README_URL, server.url))
            if not command.startswith("curl"):  # an assignment: every later command sees it
                shell += command + "\n"
                continue
            result = subprocess.run(
                ["bash", "-c", shell + command], capture_output=True, text=True, timeout=60,
                cwd=tmp_path,
            )  # fmt: skip
            assert result.returncode == 0, f"{line}\n{result.stderr}"
            body, _, status = result.stdout.rpartition("\n")
            assert int(status) < 400, f"{line}\n{command}\n{status} {body}"
            if body.startswith("{"):
                tour.learn(command, orjson.loads(body))
        assert len(tour.ids["inbox"]) == 3 and len(tour.ids["jobs"]) == 3
        assert tour.claims == []  # every claim was acked or released
    finally:
        server.stop()
