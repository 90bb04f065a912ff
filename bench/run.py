"""Load benchmark of a real `queuey serve` process, driven by wrk.

Run from the repository root: `.venv/bin/python bench/run.py` (what `make bench` does). It
starts the server on 127.0.0.1 (a free port, a fresh temporary data directory, generated
keys), waits for `/__lbheartbeat__`, loads it with wrk and the Lua scripts beside this file,
prints msgs/s and latency percentiles per scenario next to the targets, writes the results as
JSON (and Markdown) under .bench/, and stops the server by its PID. Every request goes to
loopback and every load loop is bounded in time (wrk -d). docs/benchmarks.md explains the
scenarios.

Exit status: 0 when every response was 2xx and held what it should; 1 when any response was
not (or a socket error happened); 2 when the bench could not run (no wrk, server did not start).
A result below its target is reported as BELOW but does not fail the run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import http.client
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
APP = "bench"
SMALL_APP = "few"
SCENARIOS = ("driver", "post", "batch", "get", "claim", "queues")
DRIVER_IN_FLIGHT = 64  # the driver-only baseline's requests in flight (wrk's connections)

# Messages like the original load tester's: 140 random bytes, base64-encoded (188 characters).
MESSAGE_BYTES = 140
BATCH_SIZE = 100
READ_LIMIT = 100
GET_PREFILL = 20_000
SMALL_QUEUES = 10
COMPARE_LIMIT = 10  # list page size when comparing 10 queues with many
SEEDED_QUEUES = 1000
MESSAGES_PER_SEEDED_QUEUE = 10
CLAIM_SIZE = 10  # messages per claim in the claim+ack scenario
CLAIM_PREFILL_PER_S = 30_000  # messages posted beforehand per second of claim load

# msgs/s floors for sqlite with durability=normal; scenario -> {workers: target}. A run with
# more workers than a listed count is held to the highest listed one below it.
TARGETS: dict[str, dict[int, float]] = {
    "post": {1: 12_000, 2: 20_000},
    "batch": {1: 150_000},
    "get": {1: 150_000},
    "claim": {1: 10_000},
}


class BenchError(Exception):
    """The bench cannot go on (server down, wrk missing, a setup request failed)."""


# --- command line -------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    workers: int
    backend: str
    durability: str
    duration: int
    warmup: int
    connections: int
    threads: int
    timeout: int
    scenarios: tuple[str, ...]
    queues: int
    populate_limit: int
    output: Path
    server_cmd: tuple[str, ...]
    keep_data: bool
    install_wrk: bool
    repeat: int = 1


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Load-test a real `queuey serve` process on 127.0.0.1 with wrk.",
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--backend",
        choices=("sqlite", "memory", "cassandra"),
        default="sqlite",
        help="cassandra: a single node started (or reused) with tools/cassandra/node.py",
    )
    parser.add_argument("--durability", choices=("normal", "full"), default="normal")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of unmeasured load before each run (0: none)"
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--timeout", type=int, default=10, help="wrk request timeout, seconds")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma list of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--queues",
        type=int,
        default=1_000_000,
        help="queues to create for the queue-list scenario (default 1,000,000)",
    )
    parser.add_argument(
        "--populate-limit",
        type=int,
        default=1800,
        help="seconds the queue creation may take at most (wrk -d of the population)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_DIR / ".bench" / "results.json",
        help="where to write the results as JSON (a .md table and raw wrk output go beside it)",
    )
    parser.add_argument(
        "--server-cmd",
        default="",
        help="command that runs the server, before its `serve ...` arguments "
        "(default: the queuey script next to this Python, else `python -m queuey`)",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the server's temporary data directory"
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never apt-get install wrk; fail if it is missing"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measured runs per row; the row reports the median one (default 1)",
    )
    ns = parser.parse_args(argv)
    scenarios = tuple(s.strip() for s in str(ns.scenarios).split(",") if s.strip())
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    if min(ns.workers, ns.duration, ns.threads, ns.repeat) < 1 or ns.warmup < 0:
        parser.error("--workers, --duration, --threads and --repeat must be >= 1, --warmup >= 0")
    if ns.connections < ns.threads:
        parser.error("--connections must be >= --threads")
    if ns.queues < READ_LIMIT:
        parser.error(f"--queues must be >= {READ_LIMIT}")
    server_cmd = tuple(str(ns.server_cmd).split()) if ns.server_cmd else default_server_cmd()
    return Options(
        workers=ns.workers,
        backend=ns.backend,
        durability=ns.durability,
        duration=ns.duration,
        warmup=ns.warmup,
        connections=ns.connections,
        threads=ns.threads,
        timeout=ns.timeout,
        scenarios=tuple(s for s in SCENARIOS if s in scenarios),
        queues=ns.queues,
        populate_limit=ns.populate_limit,
        output=Path(ns.output),
        server_cmd=server_cmd,
        keep_data=bool(ns.keep_data),
        install_wrk=not ns.no_install,
        repeat=ns.repeat,
    )


def default_server_cmd() -> tuple[str, ...]:
    script = Path(sys.executable).parent / "queuey"
    if script.exists():
        return (str(script),)
    return (sys.executable, "-m", "queuey")


def say(text: str) -> None:
    print(text, flush=True)


# --- wrk ----------------------------------------------------------------------------------


def ensure_wrk(install: bool) -> str:
    """The path of wrk, installing the Debian package when it is missing and we may."""
    found = shutil.which("wrk")
    if found:
        return found
    if not install:
        raise BenchError("wrk is not on PATH (install the Debian package: apt-get install wrk)")
    apt_install(["wrk"], "wrk is not on PATH")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get reported success but wrk is still not on PATH")
    say(f"installed {found}")
    return found


def apt_install(packages: Sequence[str], why: str) -> None:
    """Install Debian packages with apt-get (refreshing its lists once if that fails)."""
    wanted = " ".join(packages)
    if shutil.which("apt-get") is None:
        raise BenchError(f"{why} and there is no apt-get to install it; install {wanted}")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise BenchError(f"{why}; install it as root: apt-get install -y {wanted}")
        prefix = ["sudo", "-n"]
    install_cmd = [*prefix, "apt-get", "install", "-y", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"{why}: installing it with `{' '.join(install_cmd)}`")
    if subprocess.run(install_cmd, env=env).returncode != 0:
        update_cmd = [*prefix, "apt-get", "update"]
        say(f"install failed: refreshing the package lists with `{' '.join(update_cmd)}`")
        subprocess.run(update_cmd, env=env)
        say(f"retrying `{' '.join(install_cmd)}`")
        if subprocess.run(install_cmd, env=env).returncode != 0:
            raise BenchError(f"could not install {wanted} with apt-get; install it and re-run")


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    bytes: int
    errors: dict[str, int]
    statuses: dict[str, int]
    items: int
    bad_items: int
    first_bad: str
    latency_us: dict[str, float]

    @property
    def socket_errors(self) -> int:
        return sum(n for kind, n in self.errors.items() if kind != "status")

    @property
    def non_2xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if not code.startswith("2"))

    @property
    def req_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def items_s(self) -> float:
        return self.items / self.duration_s if self.duration_s > 0 else 0.0

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.non_2xx:
            bad = {c: n for c, n in self.statuses.items() if not c.startswith("2")}
            out.append(f"{self.non_2xx} non-2xx responses {bad}")
        if self.socket_errors:
            out.append(f"socket errors {self.errors}")
        if self.bad_items:
            out.append(f"{self.bad_items} 2xx responses with the wrong number of items")
        if self.first_bad:
            out.append(f"first bad response: {self.first_bad}")
        if self.requests == 0:
            out.append("no request completed")
        return out


class Wrk:
    def __init__(self, binary: str, base_url: str, opts: Options, raw_dir: Path) -> None:
        self.binary = binary
        self.base_url = base_url
        self.opts = opts
        self.raw_dir = raw_dir

    def run(
        self,
        name: str,
        script: str,
        args: Sequence[str],
        *,
        duration: int,
        connections: int | None = None,
        until_marker: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> WrkResult:
        """Run wrk with bench/<script> for at most `duration` seconds.

        With until_marker, wrk is interrupted (SIGINT, which ends its sleep and makes it
        report) once every wrk thread printed BENCH_POPULATE_DONE.
        """
        cmd = [
            self.binary,
            f"-t{self.opts.threads}",
            f"-c{connections or self.opts.connections}",
            f"-d{duration}s",
            f"--timeout={self.opts.timeout}s",
            "-s",
            str(BENCH_DIR / script),
            self.base_url,
            "--",
            *args,
        ]
        lines: list[str] = []
        done_threads = 0
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if on_line is not None:
                    on_line(line)
                if until_marker and line.startswith("BENCH_POPULATE_DONE"):
                    done_threads += 1
                    if done_threads == self.opts.threads:
                        proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output = "".join(lines)
        file_name = name.replace("/", "_").replace("@", "-")
        (self.raw_dir / f"{file_name}.txt").write_text(" ".join(cmd) + "\n\n" + output)
        if code != 0:
            raise BenchError(f"wrk exited with {code} in {name}:\n{output}")
        return parse_wrk(output, name)


def parse_wrk(output: str, name: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            data: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=float(data["duration_us"]) / 1e6,
                bytes=int(data["bytes"]),
                errors={str(k): int(v) for k, v in data["errors"].items()},
                statuses={str(k): int(v) for k, v in data["statuses"].items()},
                items=int(data["items"]),
                bad_items=int(data["bad_items"]),
                first_bad=str(data["first_bad"]),
                latency_us={str(k): float(v) for k, v in data["latency_us"].items()},
            )
    raise BenchError(f"wrk printed no BENCH_JSON line in {name}:\n{output}")


# --- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- Cassandra -----------------------------------------------------------------------------


def cassandra_keyspaces() -> tuple[str, str]:
    """This run's messages and metadata keyspaces: named after the process, so that two bench
    runs on one node never drop each other's tables."""
    return f"queuey_bench_{os.getpid()}_messages", f"queuey_bench_{os.getpid()}_metadata"


def cassandra_config(data_dir: Path, keyspaces: tuple[str, ...]) -> list[str]:
    """Start (or reuse) the single Cassandra node, empty ``keyspaces``, and return the
    server's [storage] and [metadata] lines for them."""
    hosts = cassandra_hosts()
    drop_keyspaces(hosts, keyspaces)
    messages, metadata = keyspaces
    return [
        f"host = {hosts}",
        f"database = {messages}",
        f"path = {data_dir}",
        "",
        "[metadata]",
        "backend = cassandra",
        f"database = {metadata}",
    ]


def cassandra_hosts() -> str:
    """The single Cassandra node's ``host:port`` list, started if it is not running."""
    sys.path.insert(0, str(REPO_DIR))
    from tools.cassandra import node

    try:
        return str(node.start(node.SINGLE))
    except node.NodeError as exc:
        raise BenchError(f"Cassandra: {exc}") from exc


def drop_keyspaces(hosts: str, keyspaces: tuple[str, ...]) -> None:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.connection import DefaultEndPoint
    from cassandra.io.libevreactor import LibevConnection
    from cassandra.policies import DCAwareRoundRobinPolicy

    points = [
        DefaultEndPoint(h, int(p)) for h, _, p in (x.partition(":") for x in hosts.split(","))
    ]
    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy())
    cluster = Cluster(
        contact_points=points,
        connection_class=LibevConnection,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        session = cluster.connect()
        for keyspace in keyspaces:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def answering(
    proc: subprocess.Popen[bytes],
    port: int,
    path: str,
    statuses: Sequence[int],
    wait_s: float,
    what: str,
    log_tail: Callable[[], str],
) -> None:
    """Wait until the process started answers GET ``path`` with one of ``statuses``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{what} exited with {proc.returncode} before answering:\n{log_tail()}"
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            try:
                conn.request("GET", path)
                if conn.getresponse().status in statuses:
                    say(f"{what} pid {proc.pid} answers on http://{HOST}:{port}")
                    return
            finally:
                conn.close()
        time.sleep(0.1)
    raise BenchError(f"{what} did not answer {path} within {wait_s:.0f}s")


class Server:
    """One `queuey serve` subprocess with its own config and data directory."""

    def __init__(self, opts: Options, keys: dict[str, str], workdir: Path) -> None:
        self.opts = opts
        self.port = free_port()
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir()
        self.log_path = workdir / "server.log"
        self.config_path = workdir / "queuey.ini"
        lines = ["[application_keys]", *(f"{app} = {key}" for app, key in keys.items()), ""]
        lines += ["[storage]", f"backend = {opts.backend}"]
        if opts.backend == "sqlite":
            lines += [f"path = {self.data_dir}", f"durability = {opts.durability}"]
        self.setup_error = ""
        self.keyspaces: tuple[str, ...] = (
            cassandra_keyspaces() if opts.backend == "cassandra" else ()
        )
        if self.keyspaces:
            try:
                lines += cassandra_config(self.data_dir, self.keyspaces)
            except BenchError as exc:
                self.setup_error = str(exc)
        lines.append("")
        self.config_path.write_text("\n".join(lines))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            *self.opts.server_cmd,
            "serve",
            "--config",
            str(self.config_path),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.opts.workers),
        ]

    def start(self, wait_s: float = 60.0) -> None:
        say(f"starting server: {' '.join(self.command)}")
        with self.log_path.open("wb") as log:
            # Its own session, so that stop() can also reach worker processes it forked.
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_DIR,
                start_new_session=True,
            )
        answering(self.proc, self.port, "/__lbheartbeat__", (200,), wait_s, "server", self.log_tail)

    @property
    def pgid(self) -> int | None:
        """The server's process group (its own session: the pid of the process we started)."""
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            say(f"stopping server pid {proc.pid}")
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                say(f"server pid {proc.pid} ignored SIGTERM for 30s: killing its process group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Worker processes it may have left behind share its process group (its pid).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        self.proc = None
        if self.keyspaces and not self.opts.keep_data:
            with contextlib.suppress(Exception):  # the node may be gone: nothing left to drop
                drop_keyspaces(cassandra_hosts(), self.keyspaces)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


class Client:
    """A keep-alive HTTP client for the set-up requests (not the measured load)."""

    # Servers close idle keep-alive connections (uvicorn after 5 s): reconnect before that,
    # rather than retry a request that may have been carried out.
    IDLE_S = 1.0

    def __init__(self, port: int, keys: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.keys = keys
        self.last_used = time.monotonic()

    def close(self) -> None:
        self.conn.close()

    def call(
        self,
        method: str,
        path: str,
        app: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        expect: int = 200,
    ) -> Any:
        headers = {"Authorization": f"Application {self.keys[app]}"}
        if content_type:
            headers["Content-Type"] = content_type
        if time.monotonic() - self.last_used > self.IDLE_S:
            self.conn.close()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            self.last_used = time.monotonic()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            raise BenchError(f"{method} {path}: {exc!r}") from exc
        if response.status != expect:
            raise BenchError(
                f"{method} {path}: HTTP {response.status} (want {expect}): {data[:300]!r}"
            )
        return json.loads(data) if data else None

    def create_queue(self, app: str, name: str) -> None:
        form = urlencode({"queue_name": name, "partitions": 1}).encode()
        self.call(
            "POST",
            f"/v1/{app}",
            app,
            body=form,
            content_type="application/x-www-form-urlencoded",
            expect=201,
        )

    def post_batch(self, app: str, queue: str, bodies: Sequence[str]) -> list[str]:
        payload = json.dumps({"messages": [{"body": b} for b in bodies]}).encode()
        reply = self.call(
            "POST",
            f"/v1/{app}/{queue}",
            app,
            body=payload,
            content_type="application/json",
            expect=201,
        )
        keys = [str(m["key"]) for m in reply["messages"]]
        if len(keys) != len(bodies):
            raise BenchError(f"batch POST to {queue} stored {len(keys)} of {len(bodies)}")
        return keys

    def list_queues(self, app: str, offset: str, limit: int) -> list[str]:
        query = urlencode({"limit": limit, "offset": offset})
        reply = self.call("GET", f"/v1/{app}?{query}", app)
        return [str(q["queue_name"]) for q in reply["queues"]]


def message_body() -> str:
    return base64.b64encode(os.urandom(MESSAGE_BYTES)).decode()


# --- CPU accounting -----------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CPU_COLUMNS = ("server", "wrk", "kernel", "others")
BUSY_OTHERS_WARN = 0.2  # cores used by other processes that make a run suspect


def machine_busy_s() -> float | None:
    """CPU seconds the machine spent in user, system and steal time since boot (Linux).

    Interrupt and softirq time (much of it loopback networking for the bench itself) is left
    out, as is iowait."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, steal = values[0], values[1], values[2], values[7]
    return (user + nice + system + steal) / CLOCK_TICKS


def process_cpu_s(pgid: int | None) -> tuple[float, float]:
    """CPU seconds used so far by the live processes of a process group, and by the kernel's
    own threads (writeback and the like, busy with the server's I/O), from /proc (Linux)."""
    group = kernel = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state ppid pgrp ... (utime and stime are the 12th and 13th).
        ticks = int(fields[11]) + int(fields[12])
        if pgid is not None and int(fields[2]) == pgid:
            group += ticks
        elif int(fields[1]) == 2 or entry.name == "2":  # children of kthreadd
            kernel += ticks
    return group / CLOCK_TICKS, kernel / CLOCK_TICKS


@dataclass
class CpuSample:
    at: float
    machine: float | None
    server: float
    kernel: float
    children: float
    me: float

    @classmethod
    def take(cls, server_pgid: int | None) -> CpuSample:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        server, kernel = process_cpu_s(server_pgid)
        return cls(
            at=time.monotonic(),
            machine=machine_busy_s(),
            server=server,
            kernel=kernel,
            children=children.ru_utime + children.ru_stime,
            me=me.ru_utime + me.ru_stime,
        )

    def cores_since(self, before: CpuSample) -> dict[str, float]:
        """Average cores used between two samples by the server, wrk, kernel threads and every
        other process (those, e.g. a test suite running beside the bench, skew the numbers)."""
        wall = self.at - before.at
        if wall <= 0:
            return {}
        server = (self.server - before.server) / wall
        wrk = (self.children - before.children) / wall  # wrk is the only child reaped between
        kernel = (self.kernel - before.kernel) / wall
        out = {"server": round(server, 2), "wrk": round(wrk, 2), "kernel": round(kernel, 2)}
        if self.machine is not None and before.machine is not None:
            machine = (self.machine - before.machine) / wall
            me = (self.me - before.me) / wall
            out["others"] = round(max(0.0, machine - server - wrk - kernel - me), 2)
        return out


# --- results ------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    description: str
    unit: str  # what the rate counts: "msgs" or "queues"
    requests: int
    duration_s: float
    req_s: float
    rate: float  # units per second
    per_request: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    bad_responses: int
    target: float | None = None
    verdict: str = ""
    cpu_cores: dict[str, float] = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)  # every measured run's rate
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, scenario: str, description: str, unit: str, result: WrkResult) -> Row:
        lat = result.latency_us
        return cls(
            scenario=scenario,
            description=description,
            unit=unit,
            requests=result.requests,
            duration_s=round(result.duration_s, 3),
            req_s=round(result.req_s, 1),
            rate=round(result.items_s, 1),
            per_request=round(result.items / result.requests, 2) if result.requests else 0.0,
            p50_ms=round(lat["p50"] / 1000, 3),
            p90_ms=round(lat["p90"] / 1000, 3),
            p99_ms=round(lat["p99"] / 1000, 3),
            max_ms=round(lat["max"] / 1000, 3),
            non_2xx=result.non_2xx,
            socket_errors=result.socket_errors,
            bad_responses=result.bad_items,
            notes=result.problems(),
        )


def target_for(scenario: str, opts: Options) -> float | None:
    if opts.backend != "sqlite" or opts.durability != "normal":
        return None
    by_workers = TARGETS.get(scenario, {})
    listed = [w for w in by_workers if w <= opts.workers]
    return by_workers[max(listed)] if listed else None


def describe_targets() -> str:
    parts = []
    for scenario, by_workers in TARGETS.items():
        floors = ", ".join(
            f">= {fmt_int(value)} msgs/s with {workers} worker{'s' if workers > 1 else ''}"
            for workers, value in sorted(by_workers.items())
        )
        parts.append(f"{scenario} {floors}")
    return "; ".join(parts)


def judge(row: Row, opts: Options) -> None:
    row.target = target_for(row.scenario, opts)
    if row.notes:
        row.verdict = "ERRORS"
    elif row.target is not None:
        row.verdict = "PASS" if row.rate >= row.target else "BELOW"
    elif row.scenario in TARGETS:
        row.verdict = "n/a"  # targets are for sqlite with durability=normal


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def render_table(rows: Sequence[Row]) -> list[str]:
    header = (
        "scenario",
        "req/s",
        "rate",
        "per req",
        "p50 ms",
        "p99 ms",
        "errors",
        "cpu srv/wrk/kern/other",
        "target",
        "verdict",
    )
    body = [
        (
            r.scenario,
            fmt_int(r.req_s),
            f"{fmt_int(r.rate)} {r.unit}/s",
            f"{r.per_request:g}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.non_2xx + r.socket_errors + r.bad_responses),
            "/".join(f"{r.cpu_cores[k]:.2f}" for k in CPU_COLUMNS if k in r.cpu_cores),
            f">= {fmt_int(r.target)}" if r.target is not None else "",
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(cells[i]) for cells in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        out.append(cells[-1].ljust(widths[-1]))
        return "  ".join(out).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(b) for b in body)]


def render_markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    out = [
        f"Queuey load benchmark, {meta['date']} — backend {meta['backend']}, durability "
        f"{meta['durability']}, {meta['workers']} worker(s), wrk {meta['wrk_threads']} thread(s) "
        f"× {meta['connections']} connections, {meta['duration_s']} s per run, "
        f"{meta['cpus']} CPUs.",
        "",
        "| scenario | what | req/s | rate | p50 ms | p99 ms | target | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        target = f"≥ {fmt_int(r.target)} msgs/s" if r.target is not None else ""
        out.append(
            f"| {r.scenario} | {r.description} | {fmt_int(r.req_s)} | "
            f"{fmt_int(r.rate)} {r.unit}/s | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {target} | "
            f"{r.verdict} |"
        )
    return "\n".join(out) + "\n"


# --- scenarios ----------------------------------------------------------------------------


class Bench:
    def __init__(self, opts: Options, wrk: Wrk, server: Server, client: Client) -> None:
        self.opts = opts
        self.wrk = wrk
        self.server = server
        self.client = client
        self.keys = client.keys
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}

    def measure(
        self, scenario: str, description: str, unit: str, script: str, args: Sequence[str]
    ) -> Row:
        """A warm-up run (if any), then the measured run(s); all must be clean.

        With --repeat N the row is the run with the median rate; its `runs` lists every
        run's rate and its notes gather every run's problems."""
        problems: list[str] = []
        if self.opts.warmup:
            warm = self.wrk.run(f"{scenario}-warmup", script, args, duration=self.opts.warmup)
            self.check_server(scenario)
            problems += [f"warm-up: {problem}" for problem in warm.problems()]
        runs: list[Row] = []
        for i in range(self.opts.repeat):
            name = scenario if self.opts.repeat == 1 else f"{scenario}-run{i + 1}"
            before = CpuSample.take(self.server.pgid)
            result = self.wrk.run(name, script, args, duration=self.opts.duration)
            cpu = CpuSample.take(self.server.pgid).cores_since(before)
            self.check_server(scenario)
            run = Row.of(scenario, description, unit, result)
            run.cpu_cores = cpu
            problems += run.notes
            if self.opts.repeat > 1:
                say(
                    f"    run {i + 1}/{self.opts.repeat}: {fmt_int(run.req_s)} req/s, "
                    f"{fmt_int(run.rate)} {unit}/s, p50 {run.p50_ms:.2f} ms, "
                    f"p99 {run.p99_ms:.2f} ms"
                )
            runs.append(run)
        row = sorted(runs, key=lambda r: r.rate)[(len(runs) - 1) // 2]
        row.runs = [r.rate for r in runs]
        row.notes = list(dict.fromkeys(problems))
        judge(row, self.opts)
        target = f"  (target >= {fmt_int(row.target)}: {row.verdict})" if row.target else ""
        median = f" (median of {len(runs)})" if len(runs) > 1 else ""
        say(
            f"  {scenario}{median}: {fmt_int(row.req_s)} req/s, {fmt_int(row.rate)} {unit}/s, "
            f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms{target}"
        )
        self.report_cpu(scenario, row.cpu_cores)
        for note in row.notes:
            say(f"  !! {scenario}: {note}")
        self.rows.append(row)
        return row

    def report_cpu(self, scenario: str, cpu: dict[str, float]) -> None:
        if not cpu:
            return
        line = ", ".join(f"{who} {cores:.2f}" for who, cores in cpu.items())
        say(f"    CPU cores used: {line}")
        if cpu.get("others", 0.0) > BUSY_OTHERS_WARN:
            say(
                f"  ?? {scenario}: other processes used {cpu['others']:.2f} cores during the run:"
                " its numbers may be low"
            )

    def check_server(self, scenario: str) -> None:
        if not self.server.alive():
            raise BenchError(f"the server died during {scenario}:\n{self.server.log_tail()}")

    # 0. the Cassandra driver alone: the ceiling Queuey's Cassandra numbers are held to

    def driver(self, kind: str) -> None:
        """A driver-only baseline, read against a Queuey row: ``insert`` (``post``), ``batch``
        or ``get``."""
        if self.opts.backend != "cassandra":
            if kind == "insert":
                say("[driver] skipped: the driver-only baselines are for --backend cassandra")
            return
        if kind == "insert":
            say(
                f"[driver] cassandra-driver alone: prepared INSERT of one {MESSAGE_BYTES}-byte "
                f"row with a TTL (time-window compaction), {DRIVER_IN_FLIGHT} in flight, "
                "execute_async"
            )
            self.driver_row("driver", [], f"INSERT of 1 row ({MESSAGE_BYTES} B, TTL)")
        elif kind == "batch":
            say(
                f"[driver-batch] cassandra-driver alone: unlogged batches of {BATCH_SIZE} such "
                f"rows into one partition, {DRIVER_IN_FLIGHT} in flight"
            )
            self.driver_row(
                "driver-batch",
                ["--batch", str(BATCH_SIZE)],
                f"unlogged batch of {BATCH_SIZE} rows into one partition",
            )
        else:
            say(
                f"[driver-get] cassandra-driver alone: reads of {READ_LIMIT} rows from random "
                f"positions of a {GET_PREFILL:,}-row partition, {DRIVER_IN_FLIGHT} in flight"
            )
            self.driver_row(
                "driver-get",
                ["--read", str(READ_LIMIT), "--prefill", str(GET_PREFILL)],
                f"read of {READ_LIMIT} rows of a {GET_PREFILL:,}-row partition",
            )

    def driver_row(self, scenario: str, args: list[str], what: str) -> None:
        """One driver-only baseline: ``bench/cassandra_driver.py`` with ``args``."""
        command = [
            sys.executable, str(BENCH_DIR / "cassandra_driver.py"), "--hosts", cassandra_hosts(),
            "--duration", str(self.opts.duration), "--in-flight", str(DRIVER_IN_FLIGHT), *args,
        ]  # fmt: skip
        rates = []
        rows = []
        for _ in range(self.opts.repeat):
            before = CpuSample.take(self.server.pgid)
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            cpu = CpuSample.take(self.server.pgid).cores_since(before)
            if done.returncode != 0:
                raise BenchError(f"the driver-only loop failed:\n{done.stderr[-2000:]}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            row = Row(
                scenario=scenario,
                description=f"cassandra-driver only: {what}, {DRIVER_IN_FLIGHT} in flight",
                unit="rows", requests=got["requests"], duration_s=got["seconds"],
                req_s=got["requests"] / got["seconds"] if got["seconds"] else 0.0,
                rate=got["rows_s"], per_request=float(got["rows_per_request"]),
                p50_ms=got["p50_ms"], p90_ms=got["p90_ms"], p99_ms=got["p99_ms"],
                max_ms=got["max_ms"], non_2xx=0, socket_errors=0, bad_responses=0,
                cpu_cores=cpu,
            )  # fmt: skip
            if got["errors"]:
                row.notes.append(f"{got['errors']} driver errors")
            rates.append(row.rate)
            rows.append(row)
        row = sorted(rows, key=lambda r: r.rate)[(len(rows) - 1) // 2]
        row.runs = rates
        say(
            f"  {scenario}: {fmt_int(row.rate)} rows/s, p50 {row.p50_ms:.2f} ms, "
            f"p99 {row.p99_ms:.2f} ms (the bench's client and driver share the machine)"
        )
        self.report_cpu(scenario, row.cpu_cores)
        self.rows.append(row)

    # 1. one raw message per request

    def post(self) -> None:
        say(f"[post] raw POST, one {MESSAGE_BYTES}-byte base64 message per request")
        self.client.create_queue(APP, "post")
        self.measure(
            "post",
            f"raw POST, 1 message ({len(message_body())} B) per request",
            "msgs",
            "post.lua",
            [f"/v1/{APP}/post", self.keys[APP], message_body()],
        )

    # 2. JSON batches

    def batch(self, workdir: Path) -> None:
        say(f"[batch] JSON POST of {BATCH_SIZE} messages per request")
        self.client.create_queue(APP, "batch")
        body_file = workdir / "batch.json"
        body = {"messages": [{"body": message_body()} for _ in range(BATCH_SIZE)]}
        body_file.write_text(json.dumps(body))
        self.measure(
            "batch",
            f"JSON POST, {BATCH_SIZE} messages per request",
            "msgs",
            "batch.lua",
            [f"/v1/{APP}/batch", self.keys[APP], str(body_file), str(BATCH_SIZE)],
        )

    # 3. reads

    def get(self, workdir: Path) -> None:
        say(f"[get] GET limit={READ_LIMIT} at random positions of a {GET_PREFILL:,}-message queue")
        self.client.create_queue(APP, "get")
        started = time.monotonic()
        ids: list[str] = []
        for _ in range(GET_PREFILL // BATCH_SIZE):
            ids += self.client.post_batch(APP, "get", [message_body() for _ in range(BATCH_SIZE)])
        say(f"  pre-filled {len(ids):,} messages in {time.monotonic() - started:.1f}s")
        # Only ids with at least READ_LIMIT messages from them on (since= is inclusive).
        ids_file = workdir / "get-ids.txt"
        ids_file.write_text("\n".join(ids[: len(ids) - READ_LIMIT + 1]) + "\n")
        self.measure(
            "get",
            f"GET limit={READ_LIMIT} since=<random id>, {GET_PREFILL:,} messages in queue",
            "msgs",
            "get.lua",
            [f"/v1/{APP}/get", self.keys[APP], str(ids_file), str(READ_LIMIT)],
        )

    # 4. work-queue consumption

    def claim(self) -> None:
        say(f"[claim] claim {CLAIM_SIZE} messages, then ack them (one DELETE of their claims)")
        self.client.create_queue(APP, "claim")
        seconds = self.opts.warmup + self.opts.duration * self.opts.repeat
        total = seconds * CLAIM_PREFILL_PER_S
        started = time.monotonic()
        bodies = [message_body() for _ in range(1000)]
        for _ in range(total // len(bodies)):
            self.client.post_batch(APP, "claim", bodies)
        say(f"  pre-filled {total:,} messages in {time.monotonic() - started:.1f}s")
        self.measure(
            "claim",
            f"claim {CLAIM_SIZE} + ack them; rate = messages acknowledged",
            "msgs",
            "claim.lua",
            [f"/v1/{APP}/claim", self.keys[APP], str(CLAIM_SIZE)],
        )

    # 5. many queues

    def queues(self) -> None:
        total = self.opts.queues
        width = max(7, len(str(total - 1)))
        small = SMALL_QUEUES
        say(f"[queues] list and read queues at {small} and at {total:,} queues")

        # The same loads at 10 queues (application `few`) first, for comparison. The list
        # pages of the comparison hold COMPARE_LIMIT queues at both sizes.
        for i in range(small):
            name = f"q{i:0{width}d}"
            self.client.create_queue(SMALL_APP, name)
            bodies = [message_body() for _ in range(MESSAGES_PER_SEEDED_QUEUE)]
            self.client.post_batch(SMALL_APP, name, bodies)
        small_list = self.list_run(SMALL_APP, small, width, COMPARE_LIMIT, str(small))
        small_get = self.queue_get_run(SMALL_APP, small, 1, width, str(small), small)

        self.populate(total, width)

        seeded = min(SEEDED_QUEUES, total)
        stride = total // seeded
        started = time.monotonic()
        for k in range(seeded):
            bodies = [message_body() for _ in range(MESSAGES_PER_SEEDED_QUEUE)]
            self.client.post_batch(APP, f"q{k * stride:0{width}d}", bodies)
        say(
            f"  seeded {seeded:,} queues spread over the range (every {stride:,}th) with "
            f"{MESSAGES_PER_SEEDED_QUEUE} messages each in {time.monotonic() - started:.1f}s"
        )
        label = f"{total // 1_000_000}M" if total % 1_000_000 == 0 else f"{total:,}"
        self.list_run(APP, total, width, READ_LIMIT, label)
        big_list = self.list_run(APP, total, width, COMPARE_LIMIT, label)
        big_get = self.queue_get_run(APP, seeded, stride, width, label, total)
        self.extra["queue_count_comparison"] = {
            "small_queues": small,
            "large_queues": total,
            "list_limit": COMPARE_LIMIT,
            "list_req_s_ratio": ratio(big_list.req_s, small_list.req_s),
            "list_p50_ratio": ratio(big_list.p50_ms, small_list.p50_ms),
            "get_req_s_ratio": ratio(big_get.req_s, small_get.req_s),
            "get_p50_ratio": ratio(big_get.p50_ms, small_get.p50_ms),
        }

    def list_run(self, app: str, count: int, width: int, limit: int, label: str) -> Row:
        """Full pages of `limit` queues from a random offset (offsets 0 .. count-limit)."""
        return self.measure(
            f"list@{label}/{limit}",
            f"GET /v1/app?limit={limit}&offset=<random name>, {count:,} queues",
            "queues",
            "list_queues.lua",
            [f"/v1/{app}", self.keys[app], str(count), str(width)] + [str(limit)] * 3,
        )

    def queue_get_run(
        self, app: str, seeded: int, stride: int, width: int, label: str, count: int
    ) -> Row:
        """GET limit=100 on a random one of `seeded` queues (q0, q<stride>, q<2*stride>...)."""
        return self.measure(
            f"qget@{label}",
            f"GET limit={READ_LIMIT} on a random queue ({count:,} queues; {seeded:,} "
            f"hold {MESSAGES_PER_SEEDED_QUEUE} messages)",
            "msgs",
            "queue_get.lua",
            [
                f"/v1/{app}",
                self.keys[app],
                str(seeded),
                str(stride),
                str(width),
                str(READ_LIMIT),
                str(MESSAGES_PER_SEEDED_QUEUE),
            ],
        )

    def populate(self, total: int, width: int) -> None:
        say(
            f"  creating {total:,} queues through POST /v1/{APP} (wrk, {self.opts.connections} "
            f"connections, at most {self.opts.populate_limit}s)"
        )
        started = time.monotonic()
        before = CpuSample.take(self.server.pgid)

        def progress(line: str) -> None:
            if line.startswith("BENCH_PROGRESS"):
                data = json.loads(line.split(" ", 1)[1])
                done = int(data["created"]) * self.opts.threads
                elapsed = time.monotonic() - started
                say(f"    ~{done:,} queues after {elapsed:.0f}s ({done / elapsed:,.0f}/s so far)")

        result = self.wrk.run(
            "populate",
            "create_queues.lua",
            [f"/v1/{APP}", self.keys[APP], str(total), str(width), str(self.opts.threads)],
            duration=self.opts.populate_limit,
            until_marker=True,
            on_line=progress,
        )
        elapsed = time.monotonic() - started
        cpu = CpuSample.take(self.server.pgid).cores_since(before)
        self.check_server("populate")
        created = result.statuses.get("201", 0)
        row = Row.of("populate", f"create {total:,} queues (POST /v1/app)", "queues", result)
        row.req_s = row.rate = round(created / result.duration_s, 1)
        row.per_request = 1.0
        row.cpu_cores = cpu
        if created != total:
            row.notes.append(f"created {created:,} of {total:,} queues")
        self.rows.append(row)
        self.extra["populate"] = {
            "queues": total,
            "created": created,
            "seconds": round(result.duration_s, 2),
            "wall_seconds": round(elapsed, 2),
            "queues_per_s": row.rate,
        }
        say(
            f"  created {created:,} queues in {result.duration_s:.1f}s "
            f"({fmt_int(row.rate)} queues/s, p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms)"
        )
        self.report_cpu("populate", cpu)
        for note in row.notes:
            say(f"  !! populate: {note}")
        if created != total or row.notes:
            raise BenchError("queue population failed; see above")
        first = f"q{0:0{width}d}"
        last = f"q{total - 1:0{width}d}"
        if self.client.list_queues(APP, first, 1) != [first]:
            raise BenchError(f"{first} is not listed after the population")
        if self.client.list_queues(APP, last, 1) != [last]:
            raise BenchError(f"{last} is not listed after the population")


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


# --- main ---------------------------------------------------------------------------------


def git_describe() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def wrk_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True)
    return (done.stdout + done.stderr).splitlines()[0] if (done.stdout + done.stderr) else ""


def run(opts: Options) -> int:
    try:
        binary = ensure_wrk(opts.install_wrk)
    except BenchError as exc:
        say(f"bench: cannot run: {exc}")
        return 2
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    raw_dir = opts.output.parent / "wrk"
    raw_dir.mkdir(exist_ok=True)
    keys = {APP: secrets.token_hex(32), SMALL_APP: secrets.token_hex(32)}
    workdir = Path(tempfile.mkdtemp(prefix="queuey-bench-"))
    server = Server(opts, keys, workdir)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "backend": opts.backend,
        "durability": opts.durability,
        "workers": opts.workers,
        "wrk_threads": opts.threads,
        "connections": opts.connections,
        "duration_s": opts.duration,
        "warmup_s": opts.warmup,
        "repeat": opts.repeat,
        "queues": opts.queues,
        "scenarios": list(opts.scenarios),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wrk": wrk_version(binary),
        "server_cmd": " ".join(server.command),
        **git_describe(),
    }
    say(
        f"Queuey bench: backend={opts.backend} durability={opts.durability} "
        f"workers={opts.workers}, wrk {opts.threads} thread(s) x {opts.connections} connections, "
        f"{opts.duration}s per run (+{opts.warmup}s warm-up), data in {server.data_dir}"
    )
    fatal = ""
    bench: Bench | None = None
    try:
        if server.setup_error:
            raise BenchError(server.setup_error)
        server.start()
        client = Client(server.port, keys)
        wrk = Wrk(binary, f"http://{HOST}:{server.port}", opts, raw_dir)
        bench = Bench(opts, wrk, server, client)
        for scenario in opts.scenarios:
            if scenario == "driver":
                bench.driver("insert")
            elif scenario == "post":
                bench.post()
            elif scenario == "batch":
                bench.batch(workdir)
            elif scenario == "get":
                bench.get(workdir)
            elif scenario == "claim":
                bench.claim()
            elif scenario == "queues":
                bench.queues()
        # The batch and read baselines come last: the compactions of what they write would
        # otherwise still load the node during the Queuey rows after them.
        for scenario in ("batch", "get"):
            if "driver" in opts.scenarios and scenario in opts.scenarios:
                bench.driver(scenario)
        client.close()
    except BenchError as exc:
        fatal = str(exc)
    except KeyboardInterrupt:
        fatal = "interrupted"
    finally:
        server.stop()
        if opts.keep_data:
            say(f"kept the server's files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = bench.rows if bench else []
    failed = [r for r in rows if r.notes]
    ok = not fatal and not failed
    report = {
        "ok": ok,
        "error": fatal or None,
        "meta": meta,
        "targets": {"unit": "msgs/s", "conditions": "sqlite, durability=normal", **TARGETS},
        "results": [asdict(r) for r in rows],
        **(bench.extra if bench else {}),
    }
    opts.output.write_text(json.dumps(report, indent=2) + "\n")
    opts.output.with_suffix(".md").write_text(render_markdown(rows, meta))

    say("")
    say(
        f"Results (backend={opts.backend}, durability={opts.durability}, workers={opts.workers}, "
        f"{opts.connections} connections, {opts.duration}s per run; "
        f"targets for sqlite/normal; BELOW does not fail the run):"
    )
    for text in render_table(rows):
        say(text)
    comparison = report.get("queue_count_comparison")
    if isinstance(comparison, dict):
        say(
            f"from {comparison['small_queues']} to {comparison['large_queues']:,} queues: "
            f"list (limit {comparison['list_limit']}) req/s x{comparison['list_req_s_ratio']}, "
            f"p50 x{comparison['list_p50_ratio']}; queue GET req/s "
            f"x{comparison['get_req_s_ratio']}, p50 x{comparison['get_p50_ratio']} "
            "(x1 = no dependence on the queue count)"
        )
    populate = report.get("populate")
    if isinstance(populate, dict):
        say(
            f"population: {populate['created']:,} queues in {populate['seconds']}s "
            f"({fmt_int(populate['queues_per_s'])} queues/s)"
        )
    say(f"targets (sqlite, durability=normal): {describe_targets()}")
    say(f"wrote {opts.output} and {opts.output.with_suffix('.md')}")
    if fatal:
        say(f"BENCH FAILED: {fatal}")
        return 2
    if failed:
        say("BENCH FAILED: errors in " + ", ".join(r.scenario for r in failed))
        for r in failed:
            for note in r.notes:
                say(f"  {r.scenario}: {note}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
