"""nginx with the Nchan module, for the stream bench's comparison (``--against nchan``).

Needs the Debian packages ``nginx-light`` and ``libnginx-mod-nchan``, installed with apt-get
when they are missing (as ``bench/run.py`` installs wrk). :class:`Nchan` writes a
configuration to a temporary directory (one worker process, like Queuey's one worker;
``POST /pub`` publishes to the one channel, ``GET /sub`` subscribes to it as server-sent events
or a WebSocket), starts nginx in the foreground and stops it by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from run import HOST, answering, apt_install, free_port, say

BINARY = "/usr/sbin/nginx"
MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
PACKAGES = ("nginx-light", "libnginx-mod-nchan")

CONFIG = """\
load_module {module};
worker_processes 1;
worker_rlimit_nofile {files};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {files}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {host}:{port};
        location = /pub {{
            nchan_publisher;
            nchan_channel_id bench;
            nchan_message_buffer_length 1000;
        }}
        location = /sub {{
            nchan_subscriber eventsource websocket;
            nchan_channel_id bench;
            nchan_eventsource_ping_interval {heartbeat};
        }}
    }}
}}
"""


class Nchan:
    """One nginx process serving Nchan's publisher and subscriber locations."""

    def __init__(self, workdir: Path, files: int, heartbeat: int) -> None:
        """``files``: the sockets it may hold; ``heartbeat``: seconds between the pings of an
        idle event stream (Queuey's ``stream_heartbeat``)."""
        self.workdir = workdir
        self.port = free_port()
        self.files = files
        self.heartbeat = heartbeat
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_s: float = 20.0) -> None:
        if not Path(BINARY).exists() or not MODULE.exists():
            apt_install(PACKAGES, "nginx with Nchan is missing")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "nginx.conf"
        config.write_text(
            CONFIG.format(
                module=MODULE,
                files=self.files,
                dir=self.workdir,
                host=HOST,
                port=self.port,
                heartbeat=self.heartbeat,
            )  # fmt: skip
        )
        command = [BINARY, "-p", str(self.workdir), "-c", str(config)]
        say(f"starting nginx: {' '.join(command)}")
        log = (self.workdir / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        # The channel's state: 404 while nothing was published.
        errors = self.workdir / "stderr.log"
        answering(
            self.proc, self.port, "/pub", (200, 404), wait_s, "nginx",
            lambda: errors.read_text(errors="replace"),
        )  # fmt: skip

    @property
    def pids(self) -> list[int]:
        """nginx's master process and its worker."""
        if self.proc is None:
            return []
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError):
            return [self.proc.pid, *(int(p) for p in children.read_text().split())]
        return [self.proc.pid]

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            say(f"stopping nginx pid {proc.pid}")
            proc.send_signal(signal.SIGTERM)  # the master stops its worker, then itself
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self.proc = None
