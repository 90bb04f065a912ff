"""Run Apache Cassandra 5 from its Maven jars: one node, or a 3-node cluster, for Queuey.

Usage (from the repository root; only the Python standard library, Java 17 and Maven)::

    python tools/cassandra/node.py fetch                 # jars into .cassandra/lib (once)
    python tools/cassandra/node.py start                 # one node: 127.0.0.1, CQL port 9042
    python tools/cassandra/node.py start --nodes 3       # 127.0.0.1-3, CQL port 9142
    python tools/cassandra/node.py status [--nodes 3]
    python tools/cassandra/node.py kill 2 --nodes 3      # SIGKILL node 2 (by its PID)
    python tools/cassandra/node.py restart 2 --nodes 3   # start node 2 again, wait for CQL
    python tools/cassandra/node.py stop [--nodes 3]      # SIGTERM, then SIGKILL
    python tools/cassandra/node.py stop --wipe           # ... and delete the data
    python tools/cassandra/node.py hosts [--nodes 3]     # the nodes as a Queuey host setting

Everything lives under ``.cassandra/`` (git-ignored): ``lib/`` (the jars, resolved by Maven from
``tools/cassandra/pom.xml``), and per node ``<layout>/node<N>/`` with its ``cassandra.yaml``,
``logback.xml``, data, commit log, hints, ``node.log`` and ``pid``. The single node and the
cluster use different ports (9042/7000 and 9142/7100), so both can run at once.

``start`` reuses nodes that are already running (their pid file names a live process and CQL
answers); a node that is not running starts on the data it had (``--wipe``: on none). A cluster
start returns once every node sees the others up.
The settings are for tests and development (no fsync, small heaps, no authentication): never
for production data.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TOOL_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOL_DIR.parent.parent
STATE_DIR = Path(os.environ.get("QUEUEY_CASSANDRA_DIR", REPO_DIR / ".cassandra"))
LIB_DIR = STATE_DIR / "lib"
POM = TOOL_DIR / "pom.xml"
CLUSTER_NAME = "queuey"
START_TIMEOUT = 180.0

# Murmur3 tokens spread evenly over the ring for three nodes.
CLUSTER_TOKENS = ("-9223372036854775808", "-3074457345618258603", "3074457345618258602")

JAVA_MODULE_FLAGS = [
    *(
        f"--add-exports={target}=ALL-UNNAMED"
        for target in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.management/com.sun.jmx.remote.security",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
        )
    ),
    *(
        f"--add-opens={target}=ALL-UNNAMED"
        for target in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "java.base/java.lang",
            "java.base/java.util",
            "java.base/java.nio",
        )
    ),
]


# The JVMs this process started, by pid.
_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}


class NodeError(Exception):
    """A node could not be fetched, started or stopped; the message says why."""


@dataclass(frozen=True)
class Layout:
    """One node or a cluster: where its nodes listen and keep their files."""

    name: str
    nodes: int
    cql_port: int
    storage_port: int
    heap: str

    @property
    def directory(self) -> Path:
        return STATE_DIR / self.name

    def node(self, number: int) -> Node:
        if not 1 <= number <= self.nodes:
            raise NodeError(f"node {number} does not exist (1..{self.nodes})")
        return Node(self, number)

    def all(self) -> list[Node]:
        return [Node(self, n) for n in range(1, self.nodes + 1)]

    def hosts(self) -> str:
        """The nodes as a Queuey ``host`` setting."""
        return ",".join(f"{node.address}:{self.cql_port}" for node in self.all())


SINGLE = Layout("single", 1, 9042, 7000, "1G")
CLUSTER = Layout("cluster", 3, 9142, 7100, "512M")


def layout(nodes: int) -> Layout:
    if nodes == 1:
        return SINGLE
    if nodes == 3:
        return CLUSTER
    raise NodeError("--nodes must be 1 or 3")


@dataclass(frozen=True)
class Node:
    layout: Layout
    number: int

    @property
    def address(self) -> str:
        return f"127.0.0.{self.number}"

    @property
    def directory(self) -> Path:
        return self.layout.directory / f"node{self.number}"

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "node.log"

    def pid(self) -> int | None:
        """The pid of this node's JVM if it is running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # The pid may have been reused by another program: check it is this node's JVM.
        marker = f"-Dcassandra.storagedir={self.directory}".encode()
        return pid if marker in cmdline.split(b"\0") else None

    def answers(self) -> bool:
        """Whether the CQL port accepts connections."""
        try:
            with socket.create_connection((self.address, self.layout.cql_port), timeout=1):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# --- jars ------------------------------------------------------------------------------------


def cassandra_jar() -> Path | None:
    jars = sorted(LIB_DIR.glob("cassandra-all-*.jar"))
    return jars[-1] if jars else None


def fetch(quiet: bool = False) -> Path:
    """Resolve the server jars with Maven into .cassandra/lib (nothing to do when present)."""
    jar = cassandra_jar()
    stamp = LIB_DIR / ".pom"
    pom = POM.read_text()
    if jar is not None and stamp.exists() and stamp.read_text() == pom:
        return jar
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise NodeError(f"`{tool}` is not on PATH: Cassandra needs Java 17 and Maven")
    if LIB_DIR.exists():
        shutil.rmtree(LIB_DIR)
    LIB_DIR.mkdir(parents=True)
    command = [
        "mvn", "-B", "-q", "-f", str(POM),
        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={LIB_DIR}",
    ]  # fmt: skip
    if not quiet:
        print("fetching the Cassandra jars: " + " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    jar = cassandra_jar()
    if done.returncode != 0 or jar is None:
        raise NodeError(f"Maven could not fetch the jars:\n{done.stdout}\n{done.stderr}")
    stamp.write_text(pom)
    return jar


# --- configuration ----------------------------------------------------------------------------


def yaml_for(node: Node) -> str:
    layout = node.layout
    single = layout.nodes == 1
    token = "0" if single else CLUSTER_TOKENS[node.number - 1]
    seed = f"127.0.0.1:{layout.storage_port}"
    return f"""\
cluster_name: {CLUSTER_NAME}-{layout.name}
num_tokens: 1
initial_token: {token}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
dynamic_snitch: false
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seed}"
listen_address: {node.address}
rpc_address: {node.address}
storage_port: {layout.storage_port}
native_transport_port: {layout.cql_port}
start_native_transport: true
auto_bootstrap: false
data_file_directories:
  - {node.directory / "data"}
commitlog_directory: {node.directory / "commitlog"}
saved_caches_directory: {node.directory / "saved_caches"}
hints_directory: {node.directory / "hints"}
cdc_raw_directory: {node.directory / "cdc_raw"}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 32MiB
commitlog_disk_access_mode: legacy
disk_access_mode: standard
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
auto_snapshot: false
snapshot_on_duplicate_row_detection: false
hinted_handoff_enabled: true
max_hint_window: 3h
storage_compatibility_mode: NONE
phi_convict_threshold: 12
read_request_timeout: {"10000ms" if single else "5000ms"}
range_request_timeout: 10000ms
write_request_timeout: 5000ms
counter_write_request_timeout: 5000ms
cas_contention_timeout: 5000ms
truncate_request_timeout: 60000ms
request_timeout: 20000ms
memtable_heap_space: {"128MiB" if single else "64MiB"}
memtable_allocation_type: heap_buffers
memtable_flush_writers: 1
file_cache_size: 32MiB
key_cache_size: 16MiB
prepared_statements_cache_size: 8MiB
concurrent_reads: 8
concurrent_writes: 16
concurrent_counter_writes: 8
concurrent_compactors: 1
native_transport_max_threads: 32
# Cassandra's default refusal of batches over 50 KiB that span partitions, which production
# nodes apply (a node checks it only for batches over the warning threshold, so that is no
# higher; at 50 KiB it stays quiet about Queuey's own such batches, 48 KiB at most).
batch_size_warn_threshold: 50KiB
batch_size_fail_threshold: 50KiB
unlogged_batch_across_partitions_warn_threshold: 50
compaction_throughput: 64MiB/s
"""


LOGBACK = """\
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


def command_for(node: Node, jar: Path) -> list[str]:
    directory = node.directory
    jamm = sorted(LIB_DIR.glob("jamm-*.jar"))
    heap = node.layout.heap
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=300",
        "-XX:ParallelGCThreads=2",
        "-XX:ConcGCThreads=1",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:+PerfDisableSharedMem",
        "-Xss256k",
        "-XX:+UseTLAB",
        "-XX:+ResizeTLAB",
        *(["-javaagent:" + str(jamm[-1])] if jamm else []),
        *JAVA_MODULE_FLAGS,
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true",
        "-Dio.netty.allocator.maxOrder=11",
        "-Djava.net.preferIPv4Stack=true",
        "-Dchronicle.analytics.disable=true",
        f"-Djava.io.tmpdir={directory / 'tmp'}",
        f"-Djna.tmpdir={directory / 'tmp'}",
        f"-Dio.netty.native.workdir={directory / 'tmp'}",
        f"-Dcassandra.config=file://{directory / 'cassandra.yaml'}",
        f"-Dcassandra.storagedir={directory}",
        f"-Dcassandra.logdir={directory}",
        f"-Dlogback.configurationFile={directory / 'logback.xml'}",
        f"-Dcassandra.triggers_dir={directory / 'triggers'}",
        "-Dcassandra-foreground=yes",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        f"-Dcassandra.ring_delay_ms={1000 if node.layout.nodes == 1 else 5000}",
        "-Dcassandra.superuser_setup_delay_ms=0",
        "-Dcassandra.skip_sync=true",
        # Schema and system tables unflushed: fine for one node stopped cleanly, but a cluster
        # node is killed in tests and must come back with its schema.
        *(["-Dcassandra.unsafesystem=true"] if node.layout.nodes == 1 else []),
        "-Dcassandra.available_processors=2",
        "-cp",
        f"{LIB_DIR}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]


# --- life cycle -----------------------------------------------------------------------------


def prepare(node: Node, wipe: bool) -> None:
    directory = node.directory
    if wipe and directory.exists():
        shutil.rmtree(directory)
    for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "tmp", "triggers"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "cassandra.yaml").write_text(yaml_for(node))
    (directory / "logback.xml").write_text(LOGBACK)


def launch(node: Node, jar: Path) -> int:
    with node.log_file.open("ab") as log:
        process = subprocess.Popen(
            command_for(node, jar),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=node.directory,
            start_new_session=True,  # not killed with the shell or test run that started it
        )
    node.pid_file.write_text(f"{process.pid}\n")
    _LAUNCHED[process.pid] = process  # kept: a collected Popen of a live process warns
    return process.pid


def wait_for_cql(node: Node, pid: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise NodeError(
                f"node {node.number} ({node.address}) exited during start-up; "
                f"its log {node.log_file} ends with:\n{node.log_tail()}"
            )
        if node.answers():
            return
        time.sleep(0.25)
    raise NodeError(
        f"node {node.number} did not answer CQL on {node.address}:{node.layout.cql_port} "
        f"within {timeout:.0f} s; its log ends with:\n{node.log_tail()}"
    )


def _alive(pid: int) -> bool:
    launched = _LAUNCHED.get(pid)
    if launched is not None:
        if launched.poll() is None:
            return True
        del _LAUNCHED[pid]
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False  # our child, and it has exited
    except ChildProcessError:
        pass  # not our child: look at it directly
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def start(layout: Layout, wipe: bool = False, quiet: bool = False) -> str:
    """Start (or reuse) every node of the layout; returns its ``host`` setting."""
    running = [node.pid() is not None and node.answers() for node in layout.all()]
    if all(running):
        if not quiet:
            print(f"Cassandra ({layout.name}) already running: host = {layout.hosts()}")
        return layout.hosts()
    jar = fetch(quiet)
    check_addresses(layout)
    fresh = not any(node.pid() for node in layout.all())
    offsets = _log_offsets(layout)
    started: list[Node] = []
    for node in layout.all():
        if node.pid() is not None:
            wait_for_cql(node, node.pid() or 0)
            continue
        _check_port_free(node)
        prepare(node, wipe=fresh and wipe)
        offsets.update({node.number: _log_offsets(layout)[node.number]})
        began = time.monotonic()
        pid = launch(node, jar)
        started.append(node)
        if not quiet:
            print(f"starting node {node.number} on {node.address} (pid {pid})...", flush=True)
        wait_for_cql(node, pid)
        if not quiet:
            print(
                f"node {node.number} answers CQL on {node.address}:{layout.cql_port} "
                f"after {time.monotonic() - began:.1f} s",
                flush=True,
            )
    wait_for_peers(layout, started, offsets)
    return layout.hosts()


def _log_offsets(layout: Layout) -> dict[int, int]:
    """How long each node's log is now: what it logs from here on is about this start."""
    return {
        node.number: node.log_file.stat().st_size if node.log_file.exists() else 0
        for node in layout.all()
    }


def wait_for_peers(
    layout: Layout, started: list[Node], offsets: dict[int, int], timeout: float = 90.0
) -> None:
    """Wait until every started node and every other running node see each other UP (gossip),
    so a quorum is reachable from any coordinator."""
    live = [node for node in layout.all() if node.pid() is not None]
    numbers = {node.number for node in started}
    pairs = [
        (a, b)
        for a in live
        for b in live
        if a != b and (a.number in numbers or b.number in numbers)
    ]
    deadline = time.monotonic() + timeout
    while pairs:
        logs = {}
        for node in live:
            with node.log_file.open("rb") as log:
                log.seek(offsets.get(node.number, 0))
                logs[node.number] = log.read().decode(errors="replace")
        pairs = [
            (a, b)
            for a, b in pairs
            if f"/{b.address}:{layout.storage_port} is now UP" not in logs[a.number]
        ]
        if not pairs:
            return
        if time.monotonic() > deadline:
            missing = ", ".join(f"node {a.number} sees node {b.number}" for a, b in pairs)
            raise NodeError(f"gossip did not settle within {timeout:.0f} s: {missing}")
        time.sleep(0.25)


def check_addresses(layout: Layout) -> None:
    for node in layout.all():
        try:
            with socket.socket() as sock:
                sock.bind((node.address, 0))
        except OSError as error:
            raise NodeError(f"cannot bind {node.address}: {error}") from None


def _check_port_free(node: Node) -> None:
    for port in (node.layout.cql_port, node.layout.storage_port):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((node.address, port))
            except OSError:
                raise NodeError(
                    f"{node.address}:{port} is in use by a process this tool did not start "
                    f"(no live pid in {node.pid_file}); stop it first"
                ) from None


def kill(node: Node) -> int:
    """SIGKILL the node's JVM, as a crash would; returns its pid."""
    pid = node.pid()
    if pid is None:
        raise NodeError(f"node {node.number} is not running")
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 30)
    return pid


def restart(node: Node) -> int:
    """Start a stopped node again on its data; wait until CQL answers."""
    if node.pid() is not None:
        raise NodeError(f"node {node.number} is already running")
    jar = fetch(quiet=True)
    prepare(node, wipe=False)
    offsets = _log_offsets(node.layout)
    pid = launch(node, jar)
    wait_for_cql(node, pid)
    wait_for_peers(node.layout, [node], offsets)
    return pid


def stop(layout: Layout, wipe: bool = False) -> list[int]:
    """SIGTERM every node (SIGKILL after 30 s); returns the pids that were running."""
    pids = [pid for pid in (node.pid() for node in layout.all()) if pid is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        if not _wait_gone(pid, 30):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
    for node in layout.all():
        node.pid_file.unlink(missing_ok=True)
    if wipe and layout.directory.exists():
        shutil.rmtree(layout.directory)
    return pids


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def status(layout: Layout) -> list[str]:
    lines = []
    for node in layout.all():
        pid = node.pid()
        state = "stopped" if pid is None else ("up" if node.answers() else "starting")
        where = f"{node.address}:{layout.cql_port}"
        lines.append(f"{layout.name} node {node.number} {where} {state} pid={pid or '-'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/cassandra/node.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command", choices=("fetch", "start", "stop", "status", "kill", "restart", "hosts")
    )
    parser.add_argument("number", nargs="?", type=int, help="node number, for kill and restart")
    parser.add_argument("--nodes", type=int, default=1, help="1 (single node) or 3 (cluster)")
    parser.add_argument(
        "--wipe",
        action="store_true",
        help="start: begin with no data (the last run's is kept otherwise); stop: delete it",
    )
    args = parser.parse_args(argv)
    try:
        chosen = layout(args.nodes)
        if args.command in ("kill", "restart") and args.number is None:
            parser.error(f"{args.command} needs a node number")
        if args.command == "fetch":
            print(fetch())
        elif args.command == "start":
            print(f"host = {start(chosen, wipe=args.wipe)}")
        elif args.command == "stop":
            pids = stop(chosen, wipe=args.wipe)
            print(f"stopped {chosen.name}: pids {pids}" if pids else f"{chosen.name}: not running")
        elif args.command == "status":
            print("\n".join(status(chosen)))
        elif args.command == "hosts":
            print(chosen.hosts())
        elif args.command == "kill":
            print(f"killed node {args.number} (pid {kill(chosen.node(args.number))})")
        else:
            print(f"node {args.number} answers again (pid {restart(chosen.node(args.number))})")
    except NodeError as error:
        print(f"cassandra: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
