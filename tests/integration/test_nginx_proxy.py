"""deploy/nginx/orderhub.conf in a running nginx: the system's nginx on free ports of 127.0.0.1
with a test certificate, in front of a stand-in for gunicorn on a unix socket that answers with
what it received. What a client and the app see: the redirect to https, certbot's challenge,
the X-Forwarded-* the app gets, body limits, static files, rate limits, security headers.
Skipped when nginx is not installed (CI installs it and sets TEST_REQUIRE_NGINX)."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.nginx import DOMAIN, find_nginx, site_with_test_certificate, write_nginx_conf

ACME_TOKEN = "test-token-4Kq"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Backend:
    """What reached the app: (method, path, headers, body length) per request."""

    seen: list[dict[str, Any]] = field(default_factory=list)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve_backend(path: str, backend: Backend) -> _Server:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen = {"method": self.command, "path": self.path, "length": length,
                    "headers": {k.lower(): v for k, v in self.headers.items()}}
            backend.seen.append(seen)
            body = json.dumps(seen).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def address_string(self) -> str:  # a unix socket peer has no address
            return "nginx"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Site:
    http_port: int
    https_port: int
    cert: Path
    backend: Backend

    def request(self, method: str, path: str, *, tls: bool = True, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                source: str = "127.0.0.1") -> http.client.HTTPResponse:
        """One request from `source` (any 127.x address is this machine), body read."""
        if tls:
            context = ssl.create_default_context(cafile=str(self.cert))
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.https_port, context=context, timeout=10,
                source_address=(source, 0))
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10,
                                              source_address=(source, 0))
        conn.request(method, path, body=body, headers={"Host": DOMAIN, **(headers or {})})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def get_json(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        context = ssl.create_default_context(cafile=str(self.cert))
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=context,
                                           timeout=10)
        conn.request("GET", path, headers={"Host": DOMAIN, **headers})
        response = conn.getresponse()
        data = json.loads(response.read())
        conn.close()
        return response.status, data


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    nginx = find_nginx()
    # A unix socket path has at most 107 bytes; pytest's tmp_path can be longer.
    sock_dir = Path(tempfile.mkdtemp(prefix="oh-nginx-"))
    backend = Backend()
    server = serve_backend(str(sock_dir / "web.sock"), backend)
    static = tmp_path / "app" / "static"
    static.mkdir(parents=True)
    (static / "app.css").write_text("body { color: green }\n")
    challenge = tmp_path / "acme" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / ACME_TOKEN).write_text("proof-of-control")
    http_port, https_port = free_port(), free_port()
    text = site_with_test_certificate(tmp_path, {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "unix:/run/orderhub/web.sock": f"unix:{sock_dir}/web.sock",
        "root /opt/orderhub/app;": f"root {tmp_path}/app;",
        "root /var/www/letsencrypt;": f"root {tmp_path}/acme;",
    })
    conf = write_nginx_conf(tmp_path, text)
    log = (tmp_path / "nginx.out").open("w")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", f"{tmp_path}/"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("nginx did not start:\n" + (tmp_path / "nginx.out").read_text()
                                + (tmp_path / "logs" / "error.log").read_text())
                time.sleep(0.05)
        yield Site(http_port, https_port, tmp_path / "nginx-cert.pem", backend)
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful stop of master and workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        server.shutdown()
        server.server_close()
        for leftover in sock_dir.iterdir():
            leftover.unlink()
        sock_dir.rmdir()


def test_port_80_redirects_to_https_and_answers_certbot(site: Site) -> None:
    redirect = site.request("GET", "/api/orders?page=2", tls=False)
    assert redirect.status == 301
    assert redirect.getheader("Location") == f"https://{DOMAIN}/api/orders?page=2"
    challenge = site.request("GET", f"/.well-known/acme-challenge/{ACME_TOKEN}", tls=False)
    assert challenge.status == 200
    assert site.backend.seen == []  # neither went to the app


def test_the_app_gets_the_client_as_nginx_saw_it(site: Site) -> None:
    status, seen = site.get_json("/api/orders", headers={
        "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example"})
    assert status == 200
    headers = seen["headers"]
    # The client's claim stays first; nginx appends the address it saw, the one
    # TRUST_PROXY=1 makes the app believe (the last).
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == DOMAIN
    assert headers["host"] == DOMAIN


def test_security_headers_are_on_every_answer(site: Site) -> None:
    for response in (site.request("GET", "/healthz"),
                     site.request("POST", "/", body=b"x" * (1024 * 1024 + 1))):  # a 413
        assert response.getheader("Strict-Transport-Security", "").startswith("max-age=")
        assert response.getheader("X-Content-Type-Options") == "nosniff"
        assert response.getheader("X-Frame-Options") == "DENY"
        assert "frame-ancestors 'none'" in response.getheader("Content-Security-Policy", "")
        assert response.getheader("Server") == "nginx"  # no version


def test_webhooks_take_up_to_max_body_bytes(site: Site) -> None:
    limit = 2 * 1024 * 1024
    ok = site.request("POST", "/webhooks/shopify", body=b"x" * limit)
    too_big = site.request("POST", "/webhooks/shopify", body=b"x" * (limit + 1))
    assert (ok.status, too_big.status) == (200, 413)
    assert [s["length"] for s in site.backend.seen] == [limit]  # the big one never arrived


def test_static_files_come_from_disk_and_missing_ones_from_the_app(site: Site) -> None:
    css = site.request("GET", "/static/app.css")
    assert css.status == 200
    assert css.getheader("Cache-Control") == "max-age=3600"
    assert site.backend.seen == []
    assert site.request("GET", "/static/other.css").status == 200
    assert [s["path"] for s in site.backend.seen] == ["/static/other.css"]


def test_login_is_rate_limited_and_webhooks_are_not(site: Site) -> None:
    logins = [site.request("POST", "/login", body=b"user=a&password=b").status
              for _ in range(10)]
    assert logins[:6] == [200] * 6      # the first plus a burst of 5
    assert 429 in logins[6:]
    webhooks = [site.request("POST", "/webhooks/shopify", body=b"{}").status for _ in range(30)]
    assert webhooks == [200] * 30


def test_metrics_are_for_this_machine_only(site: Site) -> None:
    assert site.request("GET", "/metrics").status == 200
    # 127.0.0.2 reaches nginx like any other address but 127.0.0.1 and ::1 would.
    assert site.request("GET", "/metrics", source="127.0.0.2").status == 403
    assert [s["path"] for s in site.backend.seen] == ["/metrics"]
