"""Real servers: ``python -m queuey serve`` subprocesses on 127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

KEY = "f25bfb8fe200475c8a0532a9cbe7651e"
AUTH = {"Authorization": f"Application {KEY}"}


def system_program(package: str, names: Sequence[str]) -> str:
    """The first of ``names`` found on PATH. When none is, Debian's ``package`` is installed
    with apt-get (as root, as CI runs; its package lists are fetched when they are stale);
    elsewhere the test is skipped, unless ``CI=true``: then nothing is."""
    found = _first_on_path(names)
    if found:
        return found
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip(f"{package} is missing and only root may apt-get install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    found = _first_on_path(names)
    assert found, f"apt-get installed {package}, but none of {', '.join(names)} is on PATH"
    return found


def _first_on_path(names: Sequence[str]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        return stop_process(self.process, signal.SIGINT)


def stop_process(process: subprocess.Popen[Any], stop: signal.Signals) -> int:
    """Stop ``process`` (by its PID) with ``stop``, killing it after 15 s; its exit code."""
    if process.poll() is None:
        process.send_signal(stop)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (uvicorn's worker processes), from /proc."""
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *descendants(child)]
    return found


def worker_of(server: Server, client_port: int) -> int:
    """The PID of the server's worker process that accepted the connection from
    ``client_port`` (from /proc: the socket's inode, then the process holding it)."""
    server_port = int(server.url.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (server_port, client_port):
            inodes.add(f"socket:[{fields[9]}]")
    for pid in descendants(server.process.pid):
        with contextlib.suppress(OSError):  # a process or descriptor that went meanwhile
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return pid
    raise AssertionError(f"no worker of {server.url} holds the connection from {client_port}")


def start_server(
    directory: Path, args: list[str], env: dict[str, str] | None = None, wait: bool = True
) -> Server:
    port = free_port()
    log = directory / f"server-{port}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "queuey", "serve", "--port", str(port), *args],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    if wait:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/__lbheartbeat__", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        server.stop()
        raise AssertionError(f"server did not answer in 30 s:\n{server.output()}")
    return server


def write_config(directory: Path, extra: str = "") -> Path:
    config = directory / "queuey.ini"
    config.write_text(
        f"[application_keys]\nqueuey =\n    {KEY}\n\n"
        f"[storage]\nbackend = sqlite\npath = {directory / 'data'}\n{extra}"
    )
    return config


def write_cassandra_config(directory: Path) -> Path:
    """Settings for the Cassandra test node's keyspaces (see tests/cassandra.py)."""
    from tests import cassandra

    hosts = ",".join(f"{host}:{port}" for host, port in cassandra.hosts())
    config = directory / "queuey.ini"
    config.write_text(
        f"[application_keys]\nqueuey = {KEY}\n\n"
        f"[storage]\nbackend = cassandra\nhost = {hosts}\npath = {directory}\n"
        f"database = {cassandra.KEYSPACE}\n\n"
        f"[metadata]\nbackend = cassandra\ndatabase = {cassandra.METADATA_KEYSPACE}\n"
    )
    return config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path, ["--config", str(write_config(tmp_path))])
    yield running
    running.stop()


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two server processes (separate ports) sharing one sqlite database."""
    config = str(write_config(tmp_path))
    first = start_server(tmp_path, ["--config", config])
    try:
        second = start_server(tmp_path, ["--config", config])
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
