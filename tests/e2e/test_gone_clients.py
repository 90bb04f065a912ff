"""Long polls whose client gives up (``curl -m 1``) against a real ``queuey serve``: nothing is
taken for a client that is gone."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.e2e.conftest import AUTH, KEY, Server


def give_up_on(server: Server, method: str, path: str, params: dict[str, str]) -> None:
    """Send a long poll, wait a moment for nothing, then close the connection unanswered."""
    url = urlsplit(server.url)
    body = urlencode(params).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Application {KEY}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head.encode() + body)
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):  # still waiting: no answer yet
            sock.recv(1)


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once"])
def test_a_claim_whose_client_gave_up_takes_nothing(server: Server, delivery: str) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as http:
        settings = {"queue_name": "gq", "delivery": delivery, "max_deliveries": "1"}
        assert http.post("/v1/queuey", data=settings).status_code == 201

        give_up_on(server, "POST", "/v1/queuey/gq/claims", {"wait": "20"})
        time.sleep(0.5)  # the server sees the connection close
        assert http.post("/v1/queuey/gq", content=b"important").status_code == 201
        time.sleep(0.5)  # a claim still waiting for the gone client would take it by now

        found = http.post("/v1/queuey/gq/claims", data={"limit": "10"}).json()["messages"]
        assert [(m["body"], m["deliveries"]) for m in found] == [("important", 1)]
        stats = http.get("/v1/queuey/gq/stats").json()["stats"]
        assert stats["dead_lettered"] == 0
