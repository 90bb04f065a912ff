"""The web console as a user meets it, in Chromium against a real server: signing in, queues,
messages, claims, stats, settings, dead letters; hostile text; the live tail; keyboard and
phone. Screenshots of the main views go to docs/console/."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from tests.browser.conftest import DESKTOP, PHONE, Watch, open_page, screenshot
from tests.e2e.conftest import AUTH, KEY, Server

pytestmark = pytest.mark.e2e

WRONG_KEY = "0" * 32
HOSTILE = '<img src=x onerror="window.hacked=1;alert(1)">'
Watched = tuple[Page, Watch]


def error_text(response: httpx.Response) -> str:
    """An API error as the console shows it: every entry of error_msg, ``key: message``."""
    messages: dict[str, str] = response.json()["error_msg"]
    return "; ".join(f"{key}: {message}" for key, message in messages.items())


def documented(server: Server, path: str) -> bool:
    """Whether the server has a route (routes of api.md Part 3 arrive one by one)."""
    paths: dict[str, Any] = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    return path in paths


def sign_in(page: Page, server: Server, key: str = KEY) -> None:
    if not page.url.startswith(server.url):
        page.goto(f"{server.url}/")
    page.fill("#sign-in-app", "queuey")
    page.fill("#sign-in-secret", key)
    page.click("#sign-in-form button[type=submit]")


def open_queue(page: Page, name: str, tab: str = "browse") -> None:
    page.evaluate("hash => { location.hash = hash }", f"#/queue/{name}/{tab}")
    expect(page.locator("#queue-name")).to_have_text(name)


def stat(page: Page, name: str) -> Locator:
    return page.locator(f"#stats [data-stat={name}] dd")


def notice(page: Page) -> Locator:
    return page.locator("#notice-text")


def create_queue(api: httpx.Client, name: str, **settings: str) -> None:
    api.post("", data={"queue_name": name, **settings}).raise_for_status()


def bodies(api: httpx.Client, queue: str, partitions: str = "1") -> list[str]:
    result = api.get(f"/{queue}", params={"partitions": partitions})
    result.raise_for_status()
    return [message["body"] for message in result.json()["messages"]]


def settings_of(api: httpx.Client, queue: str) -> dict[str, Any]:
    listed = api.get("", params={"details": "true", "offset": queue, "limit": 1}).json()
    found: dict[str, Any] = listed["queues"][0]
    assert found["queue_name"] == queue
    return found


def test_a_user_signs_in_creates_a_queue_posts_claims_and_deletes_it(
    watched: Watched, server: Server, api: httpx.Client
) -> None:
    page, watch = watched
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/console/")
    expect(page.locator("#sign-in-app")).to_be_focused()
    screenshot(page, "sign-in")

    # A wrong key: the API's own error, and no way in.
    sign_in(page, server, WRONG_KEY)
    wrong = httpx.get(
        f"{server.url}/v1/queuey", headers={"Authorization": f"Application {WRONG_KEY}"}
    )
    expect(notice(page)).to_have_text(error_text(wrong))
    expect(page.locator("#workspace")).to_be_hidden()

    sign_in(page, server)
    expect(page.locator("#workspace")).to_be_visible()
    assert KEY in page.evaluate("sessionStorage.getItem('queuey.console.session')")
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []

    # Create a queue with the form.
    page.click("#create summary")
    page.fill("#create-name", "orders")
    page.fill("#create-partitions", "2")
    page.select_option("#create-delivery", "exactly_once")
    page.click("#create-form button[type=submit]")
    expect(notice(page)).to_have_text("orders was created.")
    expect(page.locator("#queue-name")).to_have_text("orders")
    expect(page.locator("#queue-rows")).to_contain_text("orders")
    created = settings_of(api, "orders")
    assert (created["partitions"], created["delivery"]) == (2, "exactly_once")

    # Post: a raw message with partition, TTL and dedup id (twice), a delayed one, a batch.
    page.click("#tab-post")
    page.fill("#post-body", "first order")
    page.fill("#post-partition", "2")
    page.fill("#post-ttl", "600")
    page.fill("#post-dedup", "order-1")
    page.click("#post-form button[type=submit]")
    expect(page.locator("#posted-list li").first).to_contain_text("Posted")
    page.click("#post-form button[type=submit]")
    expect(page.locator("#posted-list li").first).to_contain_text("Duplicate of")
    page.fill("#post-body", "later")
    page.fill("#post-dedup", "")
    page.fill("#post-delay", "3600")
    page.click("#post-form button[type=submit]")
    page.fill(
        "#batch-json",
        '[{"body": {"order": 2, "lines": ["a", "b"]}}, {"body": "third", "partition": 1}]',
    )
    page.fill("#batch-partition", "2")
    page.click("#batch-form button[type=submit]")
    expect(page.locator("#posted-list li")).to_have_count(5)
    assert bodies(api, "orders", "2") == ["first order", '{"order":2,"lines":["a","b"]}']
    assert bodies(api, "orders", "1") == ["third"]
    expect(stat(page, "messages")).to_have_text("3")
    expect(stat(page, "delayed")).to_have_text("1")

    # Browse: JSON pretty-printed; fetch, overwrite and delete by id.
    page.click("#tab-browse")
    page.click("#browse-form button[type=submit]")
    messages = page.locator("#browse-list .message")
    expect(messages).to_have_count(3)
    pretty = '{\n  "order": 2,\n  "lines": [\n    "a",\n    "b"\n  ]\n}'
    assert messages.filter(has_text='"order"').locator("pre").text_content() == pretty
    screenshot(page, "messages")
    third = messages.filter(has_text="third")
    third.get_by_role("button", name="Fetch").click()
    expect(page.locator("#byid-list pre")).to_have_text("third")
    third.get_by_role("button", name="Overwrite…").click()
    expect(page.locator("#overwrite-body")).to_be_focused()
    page.fill("#overwrite-body", "third, revised")
    page.click("#overwrite-form button[type=submit]")
    expect(page.locator("#byid-list pre")).to_have_text("third, revised")
    assert bodies(api, "orders", "1") == ["third, revised"]
    messages.filter(has_text="third, revised").get_by_role("button", name="Delete").click()
    expect(messages).to_have_count(2)
    assert bodies(api, "orders", "1") == []
    refusals = {
        "": "Enter one or more message ids.",
        " ": "Enter one or more message ids.",
        ".": "“.” is not a name or id that a URL can carry.",
        "..": "“..” is not a name or id that a URL can carry.",
    }
    for ids, refusal in refusals.items():  # paths that would name the queue, or its parent
        page.fill("#byid-ids", ids)
        page.click("#byid-form button[value=delete]")
        expect(notice(page)).to_have_text(refusal)
        assert api.get("/orders/stats").status_code == 200
    expect(stat(page, "messages")).to_have_text("2")

    # Claim one and ack it; claim, extend and release another.
    page.click("#tab-claims")
    page.click("#claim-form button[type=submit]")
    claimed = page.locator("#claim-list .message")
    expect(claimed).to_have_count(1)
    expect(claimed).to_contain_text("first order")
    expect(stat(page, "claimed")).to_have_text("1")
    screenshot(page, "claims")
    claimed.get_by_role("button", name="Ack").click()
    expect(stat(page, "messages")).to_have_text("1")
    expect(stat(page, "claimed")).to_have_text("0")
    assert bodies(api, "orders", "2") == ['{"order":2,"lines":["a","b"]}']
    page.click("#claim-form button[type=submit]")
    expect(claimed).to_have_count(1)
    lease = claimed.locator("dd").nth(6)
    before = lease.inner_text()
    page.fill("#extend-ttl", "3000")
    claimed.get_by_role("button", name="Extend").click()
    expect(lease).not_to_have_text(before)
    claimed.get_by_role("button", name="Release").click()
    expect(page.locator("#claim-list")).to_have_text("No claimed message.")
    expect(stat(page, "available")).to_have_text("1")

    # Edit settings: only what changed is sent, and the queue has it.
    page.click("#tab-settings")
    expect(page.locator("#edit-delivery")).to_have_value("exactly_once")
    page.fill("#edit-claim_ttl", "45")
    page.fill("#edit-principles", "app:notifications")
    page.check("#edit-paused")
    page.click("#settings-form button[type=submit]")
    expect(notice(page)).to_have_text("Saved principles, claim_ttl, paused.")
    edited = settings_of(api, "orders")
    assert (edited["claim_ttl"], edited["principles"], edited["paused"]) == (
        45, ["app:notifications"], True,
    )  # fmt: skip
    expect(stat(page, "paused")).to_have_text("yes")
    page.uncheck("#edit-paused")
    page.click("#settings-form button[type=submit]")
    expect(stat(page, "paused")).to_have_text("no")
    screenshot(page, "settings")

    # A reload keeps the tab signed in and on the same view.
    page.reload()
    expect(page.locator("#queue-name")).to_have_text("orders")
    expect(page.locator("#edit-claim_ttl")).to_have_value("45")

    # Delete the queue, after a confirmation on the page (no dialog).
    page.click("#delete-queue")
    expect(page.locator("#delete-no")).to_be_focused()
    page.click("#delete-yes")
    expect(page.locator("#queue")).to_be_hidden()
    expect(page.locator("#queue-rows")).not_to_contain_text("orders")
    assert api.get("/orders/stats").status_code == 404
    assert all(KEY not in url for url in watch.urls)  # the key never was in a URL

    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_dead_letter_queue_is_inspected_redriven_and_purged(
    watched: Watched, server: Server, api: httpx.Client
) -> None:
    page, _ = watched
    create_queue(api, "jobs.dead")
    create_queue(api, "jobs")
    sign_in(page, server)
    open_queue(page, "jobs", "settings")
    page.fill("#edit-max_deliveries", "1")
    page.fill("#edit-dead_letter_queue", "jobs.dead")
    page.click("#settings-form button[type=submit]")
    expect(notice(page)).to_contain_text("Saved")
    api.post("/jobs", content="poison", headers={"Content-Type": "text/plain"}).raise_for_status()

    # Claimed once and released: the next claim moves it to the dead-letter queue.
    page.click("#tab-claims")
    page.click("#claim-form button[type=submit]")
    expect(page.locator("#claim-list .message")).to_contain_text("poison")
    page.click("#release-all")
    page.click("#claim-form button[type=submit]")
    expect(notice(page)).to_have_text("No message is available.")
    expect(stat(page, "dead_lettered")).to_have_text("1")

    page.click("#tab-dead")
    expect(page.locator("#dead-info")).to_contain_text("moves to jobs.dead")
    page.click("#dead-open")
    expect(page.locator("#queue-name")).to_have_text("jobs.dead")
    page.click("#browse-form button[type=submit]")
    expect(page.locator("#browse-list pre")).to_have_text("poison")
    page.click("#tab-dead")
    screenshot(page, "dead-letters")

    # Redrive moves it back to the queue it came from; purge empties that queue.
    page.click("#redrive-form button[type=submit]")
    expect(notice(page)).to_have_text("Moved 1 message.")
    assert bodies(api, "jobs") == ["poison"] and bodies(api, "jobs.dead") == []
    open_queue(page, "jobs", "dead")
    page.click("#purge")
    page.click("#purge-yes")
    expect(notice(page)).to_have_text("Purged 1 message.")
    expect(stat(page, "messages")).to_have_text("0")
    assert bodies(api, "jobs") == []


def test_a_token_is_sent_as_a_bearer_credential_and_never_in_a_url(
    watched: Watched, server: Server, api: httpx.Client
) -> None:
    page, watch = watched
    create_queue(api, "shared")
    api.post("/shared", content="for a page", headers={"Content-Type": "text/plain"})
    minted = httpx.post(
        f"{server.url}/tokens/queuey", headers=AUTH,
        data={"subject": "user:ann", "queues": "shared", "rights": "read,stats,stream"},
    )  # fmt: skip
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    page.goto(f"{server.url}/console/")
    page.fill("#sign-in-app", "queuey")
    page.check("input[name=scheme][value=Bearer]")
    page.fill("#sign-in-secret", token)
    with page.expect_request("**/v1/queuey?*") as listed:
        page.click("#sign-in-form button[type=submit]")
    assert listed.value.all_headers()["authorization"] == f"Bearer {token}"
    page.fill("#open-name", "shared")
    page.click("#open-form button[type=submit]")
    page.click("#browse-form button[type=submit]")
    expect(page.locator("#browse-list pre")).to_have_text("for a page")
    assert all(token not in url for url in watch.urls)


def test_hostile_text_is_shown_as_text(watched: Watched, server: Server, api: httpx.Client) -> None:
    page, watch = watched
    create_queue(api, "hostile", partitions="2")
    api.post("/hostile", content=HOSTILE, headers={"Content-Type": "text/html"}).raise_for_status()
    batch = {"messages": [
        {"body": json.dumps({"html": HOSTILE}), "partition": 2},
        {"body": "bell\x07 and \u202eright-to-left", "partition": 2},
    ]}  # fmt: skip
    api.post("/hostile", json=batch).raise_for_status()
    sign_in(page, server)
    open_queue(page, "hostile")
    page.click("#browse-form button[type=submit]")
    shown = page.locator("#browse-list pre")
    expect(shown).to_have_count(3)
    expect(shown.nth(0)).to_have_text(HOSTILE)
    assert shown.nth(1).text_content() == json.dumps({"html": HOSTILE}, indent=2)
    assert shown.nth(2).text_content() == "bell\\x07 and \\u202eright-to-left"
    page.click("#tab-claims")
    page.fill("#claim-limit", "3")
    page.click("#claim-form button[type=submit]")
    expect(page.locator("#claim-list pre").first).to_have_text(HOSTILE)

    # Queue names cannot hold markup: the API refuses, and its answer is text too.
    page.click("#create summary")
    page.fill("#create-name", HOSTILE)
    page.click("#create-form button[type=submit]")
    refused = api.post("", data={"queue_name": HOSTILE})
    expect(notice(page)).to_have_text(error_text(refused))

    assert page.locator("img[src=x]").count() == 0
    assert page.evaluate("window.hacked") is None
    assert watch.dialogs == []


def sse(*events: dict[str, str]) -> str:
    return "".join("".join(f"{k}: {v}\n" for k, v in event.items()) + "\n" for event in events)


def test_the_live_tail_reads_the_stream_with_the_key_in_a_header_and_resumes(
    watched: Watched, server: Server, api: httpx.Client
) -> None:
    """The tail against the stream contract of api.md (``GET .../stream``, server-sent events),
    answered here by the test: what the page sends, how it parses, how it resumes."""
    page, _ = watched
    create_queue(api, "tail")
    message = {"message_id": "a" * 32, "timestamp": "1700000000.0000000", "body": "hello",
               "partition": 1, "content_type": "text/plain"}  # fmt: skip
    hostile = {**message, "message_id": "b" * 32, "body": HOSTILE}
    split = json.dumps({**message, "message_id": "c" * 32, "body": "two\nlines"}, indent=1)
    multiline = "".join(f"data: {line}\n" for line in split.split("\n"))
    answers = [
        # a retry hint, a heartbeat, an event, an event whose data spans several lines
        "retry: 50\n\n: heartbeat\n\n"
        + sse({"id": "a" * 32, "event": "message", "data": json.dumps(message)})
        + sse({"id": "b" * 32, "data": json.dumps(hostile)})
        + f"id: {'c' * 32}\n{multiline}\n",
        sse({"event": "end", "data": "{}"}),
    ]  # fmt: skip
    seen: list[dict[str, str]] = []

    def answer(route: Route) -> None:
        seen.append({"url": route.request.url, **route.request.all_headers()})
        body = answers.pop(0) if answers else ""
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route("**/v1/queuey/tail/stream*", answer)
    sign_in(page, server)
    open_queue(page, "tail", "live")
    shown = page.locator("#live-list pre")
    expect(shown).to_have_count(3)
    assert shown.nth(0).text_content() == "two\nlines"  # data lines joined by newlines
    expect(shown.nth(1)).to_have_text(HOSTILE)
    expect(shown.nth(2)).to_have_text("hello")
    expect(page.locator("#live-state")).to_have_text("The queue was deleted: the stream ended.")
    first, second = seen[0], seen[1]
    assert "mode=broadcast" in first["url"] and KEY not in first["url"]
    assert first["authorization"] == f"Application {KEY}"
    assert first["accept"] == "text/event-stream" and "last-event-id" not in first
    assert second["last-event-id"] == "c" * 32  # resumes after the last id it saw
    assert len(seen) == 2
    assert page.locator("img[src=x]").count() == 0


def test_the_live_tail_shows_the_server_stream_or_its_error(
    watched: Watched, server: Server, api: httpx.Client
) -> None:
    page, _ = watched
    create_queue(api, "live")
    sign_in(page, server)
    open_queue(page, "live", "live")
    if documented(server, "/v1/{app}/{queue}/stream"):
        expect(page.locator("#live-state")).to_have_text("Live")
        api.post("/live", content="as it happens", headers={"Content-Type": "text/plain"})
        expect(page.locator("#live-list pre")).to_have_text("as it happens")
        expect(stat(page, "messages")).to_have_text("1")  # stats follow the stream
        screenshot(page, "live-tail")
    else:
        expected = error_text(api.get("/live/stream"))
        expect(page.locator("#live-state")).to_have_text(f"Stopped: {expected}")


def test_the_queue_list_pages_by_name_and_filters_by_prefix(
    watched: Watched, server: Server, api: httpx.Client
) -> None:
    page, watch = watched
    names = [f"page-{index:02}" for index in range(23)]
    for name in [*names, "page.after", "pagd"]:
        create_queue(api, name)
    sign_in(page, server)
    expect(page.locator("#queue-rows tr").first).to_be_visible()
    page.fill("#filter-prefix", "page-")
    page.select_option("#filter-limit", "10")
    page.click("#filter-form button[type=submit]")
    rows = page.locator("#queue-rows th")
    expect(rows).to_have_text(names[:10])
    expect(page.locator("#page-prev")).to_be_disabled()
    screenshot(page, "queues")
    page.click("#page-next")
    expect(rows).to_have_text(names[10:20])
    page.click("#page-next")
    expect(rows).to_have_text(names[20:])  # page.after is not listed: the filter stops
    expect(page.locator("#page-next")).to_be_disabled()
    page.click("#page-prev")
    expect(rows).to_have_text(names[10:20])
    page.click("#page-first")
    expect(rows).to_have_text(names[:10])
    lists = [url for url in watch.urls if "/v1/queuey?" in url and "limit=11" in url]
    offsets = [httpx.URL(url).params["offset"] for url in lists]
    assert offsets == ["page-", "page-10", "page-20", "page-10", "page-"]


def test_the_console_is_usable_by_keyboard_on_a_phone(
    browser: Browser, server: Server, api: httpx.Client
) -> None:
    create_queue(api, "handheld")
    api.post("/handheld", content="small screen", headers={"Content-Type": "text/plain"})
    page, watch = open_page(browser, PHONE)
    try:
        page.goto(f"{server.url}/console/")
        expect(page.locator("#sign-in-app")).to_be_focused()
        page.keyboard.type("queuey")
        page.keyboard.press("Tab")  # the credential's kind
        page.keyboard.press("Tab")
        expect(page.locator("#sign-in-secret")).to_be_focused()
        page.keyboard.type(KEY)
        page.keyboard.press("Enter")
        expect(page.locator("#workspace")).to_be_visible()
        page.fill("#filter-prefix", "handheld")
        page.keyboard.press("Enter")
        button = page.get_by_role("button", name="handheld", exact=True)
        expect(button).to_have_count(1)
        for _ in range(20):  # Tab to the queue, as a keyboard user does
            if button.evaluate("element => element === document.activeElement"):
                break
            page.keyboard.press("Tab")
        expect(button).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#queue-title")).to_be_focused()
        expect(page.locator("#queues")).to_be_hidden()  # one column on a phone
        page.focus("#tab-browse")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#tab-post")).to_be_focused()
        expect(page.locator("#view-post")).to_be_visible()
        page.keyboard.press("ArrowLeft")
        page.focus("#browse-limit")
        page.keyboard.press("Enter")
        expect(page.locator("#browse-list pre")).to_have_text("small screen")
        for viewport in (PHONE, DESKTOP):
            page.set_viewport_size(viewport)  # type: ignore[arg-type]
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], (viewport, width)
        page.set_viewport_size(PHONE)  # type: ignore[arg-type]
        screenshot(page, "phone")
        assert watch.errors == [] and watch.refused == [] and watch.dialogs == []
    finally:
        page.context.close()


def test_the_event_stream_parser_joins_lines_split_across_chunks(
    watched: Watched, server: Server
) -> None:
    """The console's own parser (console.js ``readEvents``), fed chunks that cut a CRLF, a
    field and an event in two, as a network may deliver them."""
    page, _ = watched
    page.goto(f"{server.url}/console/")
    chunks = [
        'data: {"a":',
        "1}\r",
        "\ndata: x\r\n\r",
        "\n: beat\n\nid: 5\nevent: end\nda",
        "ta:\n\n",
    ]
    events = page.evaluate(
        """async (chunks) => {
            const encoder = new TextEncoder();
            const body = new ReadableStream({
                start(controller) {
                    for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
                    controller.close();
                },
            });
            const seen = [];
            await readEvents(new Response(body), (event) => seen.push(event));
            return seen;
        }""",
        chunks,
    )
    assert events == [
        {"data": ['{"a":1}', "x"], "type": "", "id": None, "retry": None},
        {"data": [""], "type": "end", "id": "5", "retry": None},
    ]
