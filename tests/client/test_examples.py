"""examples/producer.py, worker.py and subscriber.py against a real server."""

from __future__ import annotations

import os
import queue as queues
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from queuey.client import Client
from tests.e2e.conftest import KEY

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).parents[2] / "examples"


class Script:
    """An example running in a subprocess, its output lines collected by a thread."""

    def __init__(self, url: str, name: str, *argv: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *argv],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "QUEUEY_URL": url, "QUEUEY_KEY": KEY},
        )  # fmt: skip
        self.lines: queues.Queue[str] = queues.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 30) -> str:
        """The next line that starts with ``prefix`` (failing after ``timeout`` s)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queues.Empty:
                raise AssertionError(f"no {prefix!r} in {self.seen}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join()
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def run(url: str, name: str, *argv: str) -> tuple[int, list[str]]:
    script = Script(url, name, *argv)
    code = script.finish()
    return code, list(script.lines.queue)


def test_the_producer_posts_its_arguments_and_numbered_jobs(url: str, queue: str) -> None:
    code, lines = run(url, "producer.py", queue, "first", "--count", "3")
    assert code == 0, lines
    [line] = lines
    assert line.startswith("posted 4 messages, 1:")
    with Client(url, KEY) as client:
        assert [m.body for m in client.read(queue)] == ["first", "job 1", "job 2", "job 3"]
        assert client.stats(queue).claim_ttl == 60
    assert run(url, "producer.py", queue, "again")[0] == 0  # the queue exists: no matter


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_worker_processes_and_acks_everything_then_stops_on_a_signal(
    url: str, queue: str, stop: signal.Signals
) -> None:
    assert run(url, "producer.py", queue, "--count", "5")[0] == 0
    worker = Script(url, "worker.py", queue, "--wait", "1")
    for n in range(1, 6):
        assert worker.expect("1:").endswith(f": job {n}")
    worker.process.send_signal(stop)
    worker.expect(f"{stop.name}: stopping")
    assert worker.expect("stopped") == "stopped after 5 messages"
    assert worker.finish() == 0
    with Client(url, KEY) as client:
        assert client.stats(queue).messages == 0


def test_a_stopped_worker_finishes_its_message_and_releases_the_rest(url: str, queue: str) -> None:
    assert run(url, "producer.py", queue, "--count", "10")[0] == 0
    worker = Script(url, "worker.py", queue, "--batch", "10", "--work", "0.5")
    worker.expect("1:")
    worker.process.send_signal(signal.SIGTERM)
    released = int(worker.expect("released ").split()[1])
    done = int(worker.expect("stopped after ").split()[2])
    assert worker.finish() == 0
    assert done >= 1 and done + released == 10
    with Client(url, KEY) as client:
        stats = client.stats(queue)
        assert (stats.messages, stats.available, stats.claimed) == (released, released, 0)
        assert [m.deliveries for m in client.claim(queue, limit=10)] == [2] * released


def test_the_subscriber_follows_and_resumes_where_it_stopped(
    url: str, queue: str, tmp_path: Path
) -> None:
    state = tmp_path / "last"
    with Client(url, KEY) as client:
        client.create_queue(queue)
        subscriber = Script(url, "subscriber.py", queue, "--state", str(state))
        subscriber.expect("ready")
        for body in ("one", "two"):
            client.post(queue, body)
        assert subscriber.expect("1:").endswith(": one")
        assert subscriber.expect("1:").endswith(": two")
        subscriber.process.send_signal(signal.SIGTERM)
        subscriber.expect("SIGTERM: stopping")
        assert subscriber.expect("stopped") == "stopped after 2 messages"
        assert subscriber.finish() == 0
        for body in ("three", "four"):  # posted while it is down
            client.post(queue, body)
        restarted = Script(url, "subscriber.py", queue, "--state", str(state))
        assert restarted.expect("1:").endswith(": three")
        assert restarted.expect("1:").endswith(": four")
        restarted.process.send_signal(signal.SIGINT)
        assert restarted.expect("stopped") == "stopped after 2 messages"
        assert restarted.finish() == 0
