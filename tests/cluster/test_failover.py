"""A real `queuey serve` on a 3-node Cassandra cluster (replication factor 3) while nodes die.

Run by ``make test-cluster`` (not by ``make test``): it starts the cluster on 127.0.0.1-3 with
``tools/cassandra/node.py`` (about 30 s), kills nodes by their PIDs and starts them again, and
stops the cluster at the end. With one node down every ``strong`` request succeeds; with two
down ``strong`` requests answer 503 within the request timeout and ``weak`` ones succeed;
once the nodes are back every acknowledged message is there.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tools.cassandra import node

from tests.e2e.conftest import AUTH, KEY, Server, start_server

pytestmark = pytest.mark.cluster

REQUEST_TIMEOUT = 3.0  # [storage] request_timeout of the server under test
SETTLE = 6.0  # longer than the strong settle window (5 s) on a cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[node.Layout]:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        reason = f"the Cassandra cluster needs {' and '.join(missing)} on PATH"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    layout = node.CLUSTER
    node.stop(layout, wipe=True)  # a fresh cluster: no data of an earlier run
    node.start(layout)
    try:
        yield layout
    finally:
        node.stop(layout, wipe=True)


@pytest.fixture
def server(cluster: node.Layout, tmp_path: Path) -> Iterator[Server]:
    config = tmp_path / "queuey.ini"
    config.write_text(
        f"[application_keys]\nqueuey = {KEY}\n\n"
        f"[storage]\nbackend = cassandra\nhost = {cluster.hosts()}\n"
        f"database = failover_messages\nreplication_factor = 3\n"
        f"request_timeout = {REQUEST_TIMEOUT}\nconnect_timeout = 5\npath = {tmp_path}\n\n"
        f"[metadata]\nbackend = cassandra\ndatabase = failover_metadata\n"
    )
    running = start_server(tmp_path, ["--config", str(config)])
    yield running
    running.stop()


class Client:
    """Posts to and reads a queue, remembering what the server acknowledged."""

    def __init__(self, server: Server, queue: str) -> None:
        self.http = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
        self.queue = queue
        self.acknowledged: list[str] = []
        self.unanswered = 0  # posts refused with 503: each may or may not have been stored
        self.failures: list[str] = []
        self.slowest = 0.0

    def close(self) -> None:
        self.http.close()

    def post(self, body: str) -> httpx.Response:
        started = time.monotonic()
        response = self.http.post(f"/v1/queuey/{self.queue}", content=body.encode())
        self.slowest = max(self.slowest, time.monotonic() - started)
        if response.status_code == 201:
            self.acknowledged.append(response.json()["messages"][0]["key"])
        else:
            self.unanswered += 1
        return response

    def holds_everything_acknowledged(self) -> bool:
        """Every acknowledged message is stored; beyond them at most one per refused post."""
        stored, acknowledged = self.stored(), set(self.acknowledged)
        return acknowledged <= stored and len(stored - acknowledged) <= self.unanswered

    def read(self) -> httpx.Response:
        return self.http.get(
            f"/v1/queuey/{self.queue}", params={"limit": "1000", "partitions": "1,2"}
        )

    def stored(self) -> set[str]:
        """Every message id the queue returns (fewer than 1000 a partition)."""
        response = self.read()
        assert response.status_code == 200, response.text
        ids = [m["message_id"] for m in response.json()["messages"]]
        assert len(ids) < 1000
        return set(ids)

    def keep_going(self, stop: threading.Event) -> None:
        """Post and read until told to stop; every answer must be a success."""
        n = 0
        while not stop.is_set():
            n += 1
            for response in (self.post(f"m{n}"), self.read()):
                if response.status_code not in (200, 201):
                    self.failures.append(f"{response.status_code} {response.text}")


def create_queue(server: Server, name: str, consistency: str) -> None:
    response = httpx.post(
        f"{server.url}/v1/queuey",
        data={"queue_name": name, "consistency": consistency, "partitions": "2"},
        headers=AUTH,
        timeout=30,
    )
    assert response.status_code == 201, response.text


def wait_for(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(1)


def test_strong_survives_one_node_down_and_nothing_acknowledged_is_lost(
    cluster: node.Layout, server: Server
) -> None:
    create_queue(server, "strong", "strong")
    create_queue(server, "weak", "weak")
    strong, weak = Client(server, "strong"), Client(server, "weak")
    try:
        check_failover(cluster, server, strong, weak)
    finally:
        strong.close()
        weak.close()


def check_failover(cluster: node.Layout, server: Server, strong: Client, weak: Client) -> None:
    version = httpx.get(f"{server.url}/__version__").json()
    assert version["storage"] == "cassandra"

    # One node dies (SIGKILL, by its PID) while a client keeps posting and reading.
    stop = threading.Event()
    worker = threading.Thread(target=strong.keep_going, args=(stop,))
    worker.start()
    # Cassandra computes when to double a slow read (speculative retry) from each table's
    # latencies, every read_request_timeout (5 s on the test cluster); until then a new
    # table waits for a dead replica. So the tables are in use for a while first.
    time.sleep(8)
    node.kill(cluster.node(3))
    time.sleep(12)
    stop.set()
    worker.join()
    assert strong.failures == []
    assert len(strong.acknowledged) > 20
    time.sleep(SETTLE)
    assert strong.stored() == set(strong.acknowledged)

    # A second node dies: no quorum. Strong requests fail fast with 503, weak ones succeed.
    node.kill(cluster.node(2))
    for i in range(5):
        started = time.monotonic()
        response = strong.post(f"no quorum {i}")
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert list(response.json()["error_msg"]) == ["storage"]
        assert elapsed < REQUEST_TIMEOUT + 1.5, elapsed
        started = time.monotonic()
        assert strong.read().status_code == 503
        assert time.monotonic() - started < REQUEST_TIMEOUT + 1.5
    for i in range(20):
        assert weak.post(f"weak {i}").status_code == 201
        assert weak.read().status_code == 200
    time.sleep(SETTLE)
    assert weak.stored() == set(weak.acknowledged)

    # The nodes come back: everything acknowledged is there (weak writes reach the restarted
    # replicas through hints and read repair).
    node.restart(cluster.node(2))
    node.restart(cluster.node(3))
    last: list[str] = []

    def strong_post_works() -> bool:
        response = strong.post("back")
        last[:] = [response.text]
        return response.status_code == 201

    wait_for(strong_post_works, 60, f"a strong post after restart ({last})")
    time.sleep(SETTLE)
    assert strong.holds_everything_acknowledged()
    wait_for(lambda: weak.stored() == set(weak.acknowledged), 90, "every weak message read back")
    assert server.process.poll() is None
