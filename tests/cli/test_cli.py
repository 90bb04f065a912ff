"""The client commands through ``queuey.cli.main``: output, ``--json`` and exit codes."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Run
from tests.client.servers import UNAVAILABLE, Answer, Stub
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


def test_help_lists_the_commands_and_the_exit_codes(cli: Run) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("serve", "queues", "create", "update", "delete", "post", "read", "claim",
                    "ack", "extend", "stats"):  # fmt: skip
        assert command in result.out
    assert "3  no server could be reached" in result.out
    assert "QUEUEY_URL" in cli("read", "--help").out


def test_queues_are_created_listed_updated_and_deleted(cli: Run, queue: str) -> None:
    created = cli("create", queue, "--partitions", "2", "--claim-ttl", "60",
                  "--principles", "app:other, app:more", "--json")  # fmt: skip
    assert created.code == 0, created.err
    assert created.json()["name"] == queue
    assert created.json()["settings"]["principles"] == ["app:other", "app:more"]
    listed = cli("queues", "--offset", queue, "--limit", "1")
    assert listed.code == 0 and queue in listed.out
    detailed = cli("queues", "--offset", queue, "--limit", "1", "--details", "--count", "--json")
    [entry] = detailed.json()
    assert (entry["settings"]["partitions"], entry["count"]) == (2, 0)
    updated = cli("update", queue, "--partitions", "3", "--paused")
    assert updated.code == 0
    assert "partitions" in updated.out and " 3 " in updated.out and "True" in updated.out
    assert cli("update", queue, "--no-paused", "--json").json()["settings"]["paused"] is False
    deleted = cli("delete", queue)
    assert (deleted.code, deleted.out.strip()) == (0, f"deleted queue {queue}")
    assert cli("stats", queue).code == 1


def test_one_message_is_posted_and_read_back(cli: Run, queue: str) -> None:
    cli("create", queue)
    posted = cli("post", queue, "hello there", "--ttl", "600", "--content-type", "text/x",
                 "--json")  # fmt: skip
    assert posted.code == 0
    key = posted.json()["key"]
    read = cli("read", queue)
    assert read.code == 0
    assert f"1:{key}" in read.out and "hello there" in read.out
    [message] = cli("read", queue, "--json").json()
    assert (message["message_id"], message["content_type"]) == (key, "text/x")


def test_bodies_are_shown_as_they_are(cli: Run, queue: str) -> None:
    cli("create", queue)
    cli("post", queue, "[bold]not markup[/bold] [/]")
    shown = cli("read", queue)
    assert shown.code == 0 and "[bold]not markup[/bold] [/]" in shown.out


def test_stdin_is_posted_line_by_line_in_order(cli: Run, queue: str) -> None:
    cli("create", queue, "--partitions", "2")
    lines = b"".join(f"line {n}\r\n".encode() for n in range(25)) + b"\n\n"
    posted = cli("post", queue, "--batch-size", "7", "--partition", "2", "--content-type",
                 "text/csv", stdin=lines)  # fmt: skip
    assert (posted.code, posted.out.strip()) == (0, f"posted 25 messages to {queue}")
    found = cli("read", queue, "--partitions", "2", "--limit", "100", "--json").json()
    assert [m["body"] for m in found] == [f"line {n}" for n in range(25)]
    assert {m["content_type"] for m in found} == {"text/csv"}
    plain = cli("post", queue, "--json", stdin=b"no options\n")
    assert plain.json() == {"posted": 1}
    [message] = cli("read", queue, "--partitions", "1,2", "--order", "descending", "--limit",
                    "1", "--json").json()[:1]  # fmt: skip
    assert (message["body"], message["content_type"]) == ("no options", "text/plain")


def test_read_takes_its_parameters(cli: Run, queue: str) -> None:
    cli("create", queue, "--partitions", "2")
    cli("post", queue, "a", "--partition", "1")
    cli("post", queue, "b", "--partition", "2")
    newest = cli("read", queue, "--partitions", "1,2", "--order", "descending", "--limit", "1",
                 "--json").json()  # fmt: skip
    assert [m["body"] for m in newest] == ["a", "b"]
    assert cli("read", queue, "--partitions", "1,x").code == 2
    assert cli("read", queue, "--wait", "1", "--partitions", "3", "--json").json() == []


def test_claims_are_acked_and_extended(cli: Run, queue: str) -> None:
    cli("create", queue)
    cli("post", queue, "job 1")
    cli("post", queue, "job 2")
    shown = cli("claim", queue, "--limit", "1", "--ttl", "60")
    assert shown.code == 0 and "job 1" in shown.out and "claim_id" in shown.out
    [claimed] = cli("claim", queue, "--limit", "5", "--json").json()
    claim_id = claimed["claim_id"]
    extended = cli("extend", queue, claim_id, "--ttl", "120")
    assert extended.code == 0 and extended.out.startswith("extended 1 claims until ")
    acked = cli("ack", queue, claim_id, "--json")
    assert (acked.code, acked.json()) == (0, {"acked": [claim_id]})
    again = cli("ack", queue, claim_id)
    assert again.code == 1
    assert "ClaimExpired" in again.err and f"failed: {claim_id}" in again.err
    released = cli("extend", queue, claim_id, "--ttl", "0", "--json")
    assert released.code == 1
    assert f'"failed":["{claim_id}"]' in released.err and '"status":409' in released.err


def test_a_release_makes_the_message_available_again(cli: Run, queue: str) -> None:
    cli("create", queue)
    cli("post", queue, "job")
    [claimed] = cli("claim", queue, "--json").json()
    released = cli("extend", queue, claimed["claim_id"], "--ttl", "0")
    assert (released.code, released.out.strip()) == (0, "released 1 claims")
    assert cli("stats", queue, "--json").json()["available"] == 1


def test_stats_are_shown(cli: Run, queue: str) -> None:
    cli("create", queue, "--claim-ttl", "45")
    cli("post", queue, "one")
    stats = cli("stats", queue, "--json").json()
    assert (stats["messages"], stats["available"], stats["claim_ttl"]) == (1, 1, 45)
    shown = cli("stats", queue)
    assert "available" in shown.out and "claim_ttl" in shown.out and "45" in shown.out


def test_an_api_error_exits_1_with_its_error_msg(cli: Run) -> None:
    missing = cli("read", "no-such-queue")
    assert missing.code == 1
    assert missing.err.strip() == (
        "queuey: 404 InvalidQueueName: Queue of that name was not found."
    )
    refused = cli("read", "no-such-queue", "--json")
    assert refused.code == 1 and refused.out == ""
    assert '"error_msg":{"InvalidQueueName"' in refused.err


def test_bad_credentials_exit_1(cli: Run) -> None:
    denied = cli("queues", "--key", "wrong")
    assert denied.code == 1 and "401 InvalidApplicationKey" in denied.err


@pytest.mark.parametrize(
    "argv",
    [
        ("read",),
        ("read", "q", "--limit", "many"),
        ("extend", "q", "claim"),
        ("create", "q", "--type", "secret"),
        ("post", "q", "--dedup-id", "x"),
        ("post", "q", "--batch-size", "0"),
        ("queues", "--url", "http://127.0.0.1:5000"),
        ("frobnicate",),
    ],
)
def test_usage_errors_exit_2(cli: Run, argv: tuple[str, ...]) -> None:
    result = cli(*argv)
    assert result.code == 2 and result.err


def test_input_that_is_not_utf8_exits_2(cli: Run, queue: str) -> None:
    cli("create", queue)
    result = cli("post", queue, stdin=b"fine\n\xff\xfe\n")
    assert result.code == 2 and "line 2 is not UTF-8" in result.err
    assert cli("read", queue, "--json").json() == []


def test_an_unreachable_server_exits_3(cli: Run) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1/queuey"
    result = cli("queues", "--url", closed)
    assert result.code == 3 and "127.0.0.1" in result.err


def test_an_unavailable_server_exits_4(cli: Run) -> None:
    with Stub([Answer(503, UNAVAILABLE, {"Retry-After": "0"})]) as stub:
        result = cli("stats", "jobs", "--url", stub.url)
    assert result.code == 4 and "503 storage" in result.err
    assert len(stub.requests) == 4  # three retries


def test_a_refused_batch_stops_the_post_saying_what_was_stored(cli: Run) -> None:
    posted = Answer(201, b'{"status": "ok", "messages": []}')
    refused = Answer(400, b'{"status": "error", "error_msg": {"3.body": "Too long"}}')
    with Stub([posted, refused]) as stub:
        lines = b"".join(b"%d\n" % n for n in range(10))
        result = cli("post", "jobs", "--url", stub.url, "--batch-size", "4", stdin=lines)
    assert result.code == 1
    assert "posted 4 messages; the batch from line 5 on was not stored" in result.err
    assert "3.body: Too long" in result.err
    assert [method for method, _ in stub.requests] == ["POST", "POST"]


def test_batches_hold_the_batch_size(cli: Run) -> None:
    with Stub([Answer(201, b'{"status": "ok", "messages": []}')]) as stub:
        lines = b"".join(b"%d\n" % n for n in range(25))
        result = cli("post", "jobs", "--url", stub.url, "--batch-size", "10", stdin=lines)
    assert result.code == 0
    assert stub.requests == [("POST", "/v1/queuey/jobs")] * 3


def test_batches_stay_under_the_byte_cap(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("queuey.cli.messages.MAX_BATCH_BYTES", 25)
    with Stub([Answer(201, b'{"status": "ok", "messages": []}')]) as stub:
        lines = "ééééé\n".encode() * 5  # 10 bytes a line: two lines a batch
        result = cli("post", "jobs", "--url", stub.url, "--batch-size", "10", stdin=lines)
    assert result.code == 0
    assert len(stub.requests) == 3
