"""Queuey behind a real nginx (Debian's package) with TLS, configured by deploy/nginx.conf:
posts, long polls, and streams (server-sent events and WebSocket) through it over HTTPS.

When nginx is missing the test installs it (``apt-get install -y nginx-light``, as root, as
CI runs); with ``CI=true`` nothing is skipped.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from queuey.client import Client, ServerError
from tests.e2e.conftest import (
    KEY,
    Server,
    free_port,
    start_server,
    stop_process,
    system_program,
    write_config,
)

pytestmark = pytest.mark.e2e

SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
NGINX_NAMES = ("nginx", "/usr/sbin/nginx")


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    return system_program("nginx-light", NGINX_NAMES)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "queuey.pem", directory / "queuey.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    url: str
    directory: Path

    def stop(self) -> None:
        stop_process(self.process, signal.SIGQUIT)  # nginx's graceful stop


def start_nginx(
    binary: str, directory: Path, upstream: int, certificate: tuple[Path, Path], **changes: str
) -> Nginx:
    """nginx in the foreground from ``directory``, serving deploy/nginx.conf (with
    ``changes`` made to it) on a free port in front of ``127.0.0.1:upstream``."""
    directory.mkdir()
    port = free_port()
    cert_path, key_path = certificate
    site = substitute(
        SITE.read_text(),
        {
            "server 127.0.0.1:5000;": f"server 127.0.0.1:{upstream};",
            "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
            "/etc/ssl/certs/queuey.pem": str(cert_path),
            "/etc/ssl/private/queuey.key": str(key_path),
            **changes,
        },
    )
    (directory / "queuey.conf").write_text(site)
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (directory / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # its workers read this directory
        + f"daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {directory / 'access.log'};\n{temp}\n"
        f"    include {directory / 'queuey.conf'};\n}}\n"
    )
    config = str(directory / "nginx.conf")
    checked = subprocess.run([binary, "-t", "-p", str(directory), "-c", config],
                             capture_output=True)  # fmt: skip
    assert checked.returncode == 0, checked.stderr.decode()
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", config],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    running = Nginx(process, f"https://127.0.0.1:{port}", directory)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, (directory / "error.log").read_text()
        try:
            httpx.get(f"{running.url}/__lbheartbeat__", verify=False, timeout=1)
            return running
        except httpx.TransportError:
            time.sleep(0.1)
    running.stop()
    raise AssertionError(f"nginx did not answer:\n{(directory / 'error.log').read_text()}")


@dataclass
class Deployment:
    queuey: Server
    nginx: Nginx
    trust: ssl.SSLContext  # trusts the self-signed certificate
    binary: str
    certificate: tuple[Path, Path]

    @property
    def url(self) -> str:
        return f"{self.nginx.url}/v1/queuey"

    def client(self, url: str | None = None) -> Client:
        return Client(url or self.url, KEY, verify=self.trust, retries=0)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, nginx_binary: str) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("behind-nginx")
    queuey = start_server(directory, ["--config", str(write_config(directory))])
    try:
        certificate = self_signed(directory)
        upstream = int(queuey.url.rsplit(":", 1)[1])
        nginx = start_nginx(nginx_binary, directory / "nginx", upstream, certificate)
        try:
            trust = ssl.create_default_context(cafile=str(certificate[0]))
            yield Deployment(queuey, nginx, trust, nginx_binary, certificate)
        finally:
            nginx.stop()
    finally:
        queuey.stop()


def test_posts_and_reads_go_through_over_https(deployment: Deployment) -> None:
    with deployment.client() as client:
        client.create_queue("posts")
        posted = client.post_batch("posts", [f"message {n}" for n in range(50)])
        client.post("posts", "x" * 200_000)  # a body larger than nginx's buffers
        found = client.read("posts", limit=100)
        assert [m.message_id for m in found[:50]] == [p.key for p in posted]
        assert len(found[50].body) == 200_000
    with httpx.Client(verify=deployment.trust) as http:
        answer = http.get(f"{deployment.nginx.url}/__heartbeat__")
        assert answer.status_code == 200 and answer.headers["X-Request-Id"]
        assert answer.http_version == "HTTP/1.1" and answer.url.scheme == "https"
        # Behind the proxy every client is a loopback one: /metrics is closed there.
        assert http.get(f"{deployment.nginx.url}/metrics").status_code == 403
    with pytest.raises(httpx.ConnectError), httpx.Client() as unverified:
        unverified.get(f"{deployment.nginx.url}/__heartbeat__")  # TLS: the certificate is checked


def test_a_long_poll_waits_through_the_proxy(deployment: Deployment) -> None:
    with deployment.client() as client:
        client.create_queue("polls")
        started = time.monotonic()
        assert client.read("polls", wait=3) == []
        assert time.monotonic() - started >= 2.9  # held by Queuey, not cut by nginx
        with deployment.client() as poster:
            later = threading.Timer(1.0, poster.post, ("polls", "arrived"))
            started = time.monotonic()
            later.start()
            assert [m.body for m in client.read("polls", wait=10)] == ["arrived"]
            later.join()
        assert 0.9 <= time.monotonic() - started < 5  # answered when the message came


def test_the_read_timeout_setting_is_the_one_applied(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The same site with proxy_read_timeout shorter than a long poll: nginx cuts it (504),
    so the setting deploy/nginx.conf makes is what lets long polls through."""
    upstream = int(deployment.queuey.url.rsplit(":", 1)[1])
    short = start_nginx(
        deployment.binary, tmp_path / "short", upstream, deployment.certificate,
        **{"proxy_read_timeout 120s;": "proxy_read_timeout 1s;"},
    )  # fmt: skip
    try:
        with deployment.client(f"{short.url}/v1/queuey") as client:
            client.create_queue("cut")
            with pytest.raises(ServerError) as cut:
                client.read("cut", wait=3)
            assert cut.value.status == 504
    finally:
        short.stop()


def test_streams_pass_through_unbuffered(deployment: Deployment) -> None:
    with deployment.client() as client:
        client.create_queue("news")
        with client.stream("news") as events, client.stream_socket("news") as socket:
            for n in range(3):
                started = time.monotonic()
                client.post("news", f"item {n}")
                assert next(events).body == next(socket).body == f"item {n}"
                assert time.monotonic() - started < 2  # each one at once: nothing buffered
    with httpx.Client(verify=deployment.trust) as http:
        headers = {"Authorization": f"Application {KEY}", "Accept": "text/event-stream"}
        with http.stream("GET", f"{deployment.url}/news/stream", headers=headers) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert next(answer.iter_lines()).startswith("retry:")
