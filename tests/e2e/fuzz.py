"""Fuzzing the HTTP API from its OpenAPI document with schemathesis, against a real server.

``run()`` prepares queues and messages of application ``queuey``, then runs ``st run`` on the
server's ``/openapi.json`` with that application's key. Path parameters are drawn mostly from
what exists (so requests reach the logic behind the 404s), and ``DELETE /v1/{app}/{queue}``
gets queues of its own to delete. Checks: no 5xx, and every status code, content type, header
and body is one the document gives.

``python -m tests.e2e.fuzz [--max-examples N] [--seed N]`` (``make fuzz``) starts a server on
SQLite and runs a longer fuzz; the test suite runs a bounded one (tests/e2e/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

KEY = "f25bfb8fe200475c8a0532a9cbe7651e"
OTHER_KEY = "0123456789abcdef0123456789abcdef"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
ST = Path(sys.executable).with_name("st")


@dataclass
class Fixtures:
    queues: list[str]
    doomed: list[str]
    ids: list[str]
    claims: list[str]


def config_text(directory: Path, extra: str = "") -> str:
    return (
        f"[application_keys]\nqueuey = {KEY}\nnotifications = {OTHER_KEY}\n\n"
        f"[storage]\nbackend = sqlite\npath = {directory / 'data'}\n{extra}"
    )


def prepare(url: str, doomed: int = 30) -> Fixtures:
    """Queues of every kind, with messages in several partitions, and queues to delete."""
    fixtures = Fixtures([], [], [], [])
    auth = {"Authorization": f"Application {KEY}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        kinds = [
            {"partitions": "3"},
            {"partitions": "1", "type": "public"},
            {"partitions": "2", "principles": "app:notifications"},
        ]
        for index, params in enumerate(kinds):
            name = f"fuzz{index}"
            http.post("/v1/queuey", data={"queue_name": name, **params}).raise_for_status()
            fixtures.queues.append(name)
            batch = {"messages": [{"body": f"m{i}", "partition": 1 + i % int(params["partitions"])}
                                  for i in range(6)]}  # fmt: skip
            posted = http.post(f"/v1/queuey/{name}", json=batch)
            posted.raise_for_status()
            fixtures.ids += [f"{m['partition']}:{m['key']}" for m in posted.json()["messages"]]
            claimed = http.post(f"/v1/queuey/{name}/claims", data={"limit": 3, "ttl": 3600})
            claimed.raise_for_status()
            fixtures.claims += [m["claim_id"] for m in claimed.json()["messages"]]
        for index in range(doomed):
            name = f"doomed{index}"
            http.post("/v1/queuey", data={"queue_name": name}).raise_for_status()
            fixtures.doomed.append(name)
    return fixtures


def schemathesis_config(fixtures: Fixtures) -> str:
    def values(items: list[str]) -> str:
        return "{ values = " + json.dumps(items) + " }"

    return f"""\
[dictionaries]
queues = {values(fixtures.queues)}
doomed = {values(fixtures.doomed)}
ids = {values(fixtures.ids)}
claims = {values(fixtures.claims)}

[parameters]
"path.app" = "queuey"
"path.queue" = {{ dictionary = "queues", probability = 0.9 }}
"path.ids" = {{ dictionary = "ids", probability = 0.6 }}
"path.claim_ids" = {{ dictionary = "claims", probability = 0.5 }}
# Long polling holds a request up to 20 s when nothing matches; the API tests cover it.
"query.wait" = 0

[[operations]]
include-name = "DELETE /v1/{{app}}/{{queue}}"
parameters = {{ "path.queue" = {{ dictionary = "doomed", probability = 0.9 }} }}

# A stream that was accepted never ends by itself (each request would wait out the request
# timeout); HEAD on the same path runs every check a GET makes, and the API tests cover streams.
[[operations]]
include-name = "GET /v1/{{app}}/{{queue}}/stream"
enabled = false
"""


def run(
    url: str, directory: Path, max_examples: int, seed: int, max_time: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Prepare the server at ``url`` and fuzz it; the completed ``st run`` (exit 0: passed)."""
    fixtures = prepare(url)
    config = directory / "schemathesis.toml"
    config.write_text(schemathesis_config(fixtures))
    command = [
        str(ST), "--config-file", str(config), "run", f"{url}/openapi.json",
        "--header", f"Authorization: Application {KEY}",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(max_examples), "--seed", str(seed),
        "--workers", "1", "--request-timeout", "10",
        "--report", "junit", "--report-dir", str(directory / "schemathesis-report"),
    ]  # fmt: skip
    if max_time is not None:
        command += ["--max-time", str(max_time)]
    return subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=(max_time or 1800) + 120
    )


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.conftest import start_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--max-examples", type=int, default=500, help="per operation (500)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (random)")
    parser.add_argument("--max-time", type=int, default=None, help="seconds for the whole run")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4))
    with tempfile.TemporaryDirectory(prefix="queuey-fuzz-") as tmp:
        directory = Path(tmp)
        config = directory / "queuey.ini"
        config.write_text(config_text(directory))
        server = start_server(directory, ["--config", str(config)])
        try:
            result = run(server.url, directory, args.max_examples, seed, args.max_time)
        finally:
            server.stop()
        print(result.stdout, result.stderr, sep="\n")
        errors = [line for line in server.output().splitlines() if "Traceback" in line]
        if errors:
            print(server.output())
        print(f"seed {seed}: st exit {result.returncode}, server tracebacks: {len(errors)}")
        return 1 if result.returncode or errors else 0


if __name__ == "__main__":
    sys.exit(main())
