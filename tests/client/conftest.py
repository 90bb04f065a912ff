from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from queuey.client import Client
from tests.client.servers import running_server
from tests.e2e.conftest import KEY, Server, free_port


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the client tests."""
    with running_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def url(server: Server) -> str:
    return f"{server.url}/v1/queuey"


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url, KEY) as queuey:
        yield queuey


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"q-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def closed_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1/queuey"
