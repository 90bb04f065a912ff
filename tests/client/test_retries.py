"""Retries of 503 after Retry-After, fail-over between base URLs, and answers that are not
Queuey's: against a scripted stub server and a real one."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from queuey.client import (
    AsyncClient,
    AuthFailed,
    Client,
    ConnectionFailed,
    QuotaExceeded,
    ServerError,
    TooManyRequests,
    Unavailable,
)
from queuey.client.servers import Servers
from tests.client.servers import UNAVAILABLE, Answer, Stub
from tests.e2e.conftest import KEY

pytestmark = pytest.mark.e2e

LISTING = b'{"status": "ok", "queues": [{"queue_name": "inbox"}]}'


def unavailable(retry_after: str) -> Answer:
    return Answer(503, UNAVAILABLE, {"Retry-After": retry_after})


def test_a_503_is_retried_after_its_retry_after() -> None:
    with Stub([unavailable("1"), Answer(200, LISTING)]) as stub, Client(stub.url) as client:
        started = time.monotonic()
        assert [q.name for q in client.list_queues()] == ["inbox"]
        assert time.monotonic() - started >= 1
    assert stub.requests == [("GET", "/v1/queuey"), ("GET", "/v1/queuey")]


async def test_the_async_client_retries_a_503_the_same_way() -> None:
    with Stub([unavailable("1"), Answer(200, LISTING)]) as stub:
        async with AsyncClient(stub.url) as client:
            started = time.monotonic()
            assert [q.name for q in await client.list_queues()] == ["inbox"]
            assert time.monotonic() - started >= 1
    assert len(stub.requests) == 2


def test_retry_after_is_capped_and_retries_are_bounded() -> None:
    with (
        Stub([unavailable("3600")]) as stub,
        Client(stub.url, retries=2, max_retry_delay=0.1) as client,
    ):
        started = time.monotonic()
        with pytest.raises(Unavailable) as failed:
            client.post("inbox", "hello")
        assert time.monotonic() - started < 2
    assert failed.value.status == 503
    assert failed.value.error_msg == {"storage": "Back-end storage unavailable."}
    assert len(stub.requests) == 3  # the first attempt and two retries


def test_a_retry_after_date_counts_from_now() -> None:
    servers = Servers("http://127.0.0.1:1/v1/queuey", max_retry_delay=100)
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = servers.retry_delay(httpx.Response(503, headers={"Retry-After": date}))
    assert 25 <= delay <= 30
    assert servers.retry_delay(httpx.Response(503)) == 1.0
    assert servers.retry_delay(httpx.Response(503, headers={"Retry-After": "soon"})) == 1.0
    assert servers.retry_delay(httpx.Response(503, headers={"Retry-After": "-5"})) == 0.0


def test_a_503_moves_on_to_the_next_url() -> None:
    with (
        Stub([unavailable("0")]) as down,
        Stub([Answer(200, LISTING)]) as up,
        Client([down.url, up.url]) as client,
    ):
        assert [q.name for q in client.list_queues()] == ["inbox"]
        assert client.list_queues()[0].name == "inbox"  # it stays on the one that answered
    assert (len(down.requests), len(up.requests)) == (1, 2)


def test_a_refused_connection_fails_over_to_the_next_url(closed_url: str, url: str) -> None:
    with Client(f"{closed_url},{url}", KEY, retries=0) as client:
        assert client.heartbeat() is True
        assert client.servers.url == url
        client.list_queues()


async def test_the_async_client_fails_over_the_same_way(closed_url: str, url: str) -> None:
    async with AsyncClient([closed_url, url], KEY) as client:
        assert await client.heartbeat() is True
        assert client.servers.url == url


def test_connection_failed_when_every_url_refuses(closed_url: str) -> None:
    other = closed_url.replace("127.0.0.1", "localhost")
    with Client([closed_url, other]) as client, pytest.raises(ConnectionFailed) as failed:
        client.list_queues()
    assert closed_url.removesuffix("/v1/queuey") in str(failed.value)
    assert other.removesuffix("/v1/queuey") in str(failed.value)


def test_a_slow_answer_times_out_unless_the_call_waits_for_it() -> None:
    slow = Answer(200, b'{"status": "ok", "messages": []}', delay=0.6)
    with Stub([slow]) as stub, Client(stub.url, timeout=0.2, retries=0) as client:
        assert client.read("inbox", wait=1) == []  # a long poll adds its wait to the timeout
        with pytest.raises(ConnectionFailed, match="ReadTimeout"):
            client.read("inbox")
    assert len(stub.requests) == 2  # a request that may have arrived is not sent again


def test_heartbeat_reports_unavailable_storage_without_retrying() -> None:
    with Stub([unavailable("5")]) as stub, Client(stub.url) as client:
        assert client.heartbeat() is False
    assert len(stub.requests) == 1


def test_an_answer_that_is_not_queueys_raises_server_error() -> None:
    gateway = Answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})
    with Stub([gateway]) as stub, Client(stub.url) as client, pytest.raises(ServerError) as failed:
        client.stats("inbox")
    assert failed.value.status == 502
    assert "Bad Gateway" in failed.value.error_msg["body"]


def test_a_proxys_503_page_raises_unavailable_after_the_retries() -> None:
    page = Answer(503, b"<html>Service Unavailable</html>", {"Retry-After": "0"})
    with (
        Stub([page]) as stub,
        Client(stub.url, retries=1) as client,
        pytest.raises(Unavailable) as failed,
    ):
        client.read("inbox")
    assert "Service Unavailable" in failed.value.error_msg["body"]
    assert len(stub.requests) == 2


def test_a_success_without_the_expected_fields_raises_server_error() -> None:
    with (
        Stub([Answer(200, b'{"status": "ok"}')]) as stub,
        Client(stub.url) as client,
        pytest.raises(ServerError) as failed,
    ):
        client.read("inbox")
    assert failed.value.status == 200 and "messages" in failed.value.error_msg["body"]


@pytest.mark.parametrize(
    ("urls", "app", "message"),
    [
        ("http://127.0.0.1:5000", None, "name one application"),
        ("http://a/v1/one,http://b/v1/two", None, "one, two"),
        ("http://a/v1/one", "two", "one, two"),
        ("127.0.0.1:5000/v1/queuey", None, "not an http:// or https:// URL"),
        (" , ", None, "no base URL"),
    ],
)
def test_base_urls_must_name_one_application(urls: str, app: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Servers(urls, app=app)


def test_the_application_comes_from_the_url_or_the_argument() -> None:
    servers = Servers(["https://q.example/base/v1/mail/", "http://10.0.0.2:5000"], app="mail")
    assert servers.url == "https://q.example/base/v1/mail"
    assert servers.roots == ("https://q.example/base", "http://10.0.0.2:5000")


def test_quota_answers_are_their_own_errors_and_429_is_not_retried() -> None:
    over = b'{"status":"error","error_msg":{"QuotaExceeded":"Over"},"quota":"max_queues","limit":1}'
    busy = b'{"status":"error","error_msg":{"TooManyRequests":"At"},"quota":"post_rate","limit":5}'
    answers = [Answer(403, over), Answer(429, busy, {"Retry-After": "1"})]
    with Stub(answers) as stub, Client(stub.url) as client:
        with pytest.raises(QuotaExceeded) as refused:
            client.create_queue("q")
        assert (refused.value.status, refused.value.quota) == (403, "max_queues")
        assert isinstance(refused.value, AuthFailed)  # a 403 still
        with pytest.raises(TooManyRequests) as waiting:
            client.list_queues()
        assert (waiting.value.status, waiting.value.quota) == (429, "post_rate")
    assert len(stub.requests) == 2
