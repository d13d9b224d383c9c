"""Alerts against a real SMTP server (aiosmtpd) and a real HTTP webhook server, both on loopback.

What an operator checks: the e-mail arrives with the right recipients, subject and text, over TLS
when asked; the webhook gets the JSON; and when a target is down, slow or failing, the alert still
returns, the failure is in the log (without the password) and in `orderhub_alerts_total`.
"""

from __future__ import annotations

import email
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from app.alerts import Alerter, AlertSettings, alert_settings_from_env

AT = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
USER = "orderhub"
PASSWORD = "smtp-pass-7f3a9c1e5b"
TOKEN = "T0123/B4567/secret-token-89ab"


def sent(kind: str, channel: str, result: str) -> float:
    return REGISTRY.get_sample_value(
        "orderhub_alerts_total", {"kind": kind, "channel": channel, "result": result}) or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_alerter(env: dict[str, str]) -> Alerter:
    return Alerter(alert_settings_from_env(env), clock=lambda: AT)


# ---------------------------------------------------------------- SMTP server

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool


class RecordingHandler:
    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message,
                                      session.ssl is not None, bool(session.authenticated)))
        return "250 OK"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str,
                auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@dataclass
class RunningSmtp:
    port: int
    handler: RecordingHandler


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., RunningSmtp]]:
    """Start aiosmtpd on loopback with the given SMTP options; stopped after the test."""
    controllers: list[Controller] = []

    def start(**options: Any) -> RunningSmtp:
        handler = RecordingHandler()
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return RunningSmtp(port, handler)

    yield start
    for controller in controllers:
        controller.stop()


@dataclass
class Certificate:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, and a server context presenting it."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OrderHub test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return Certificate(cert_file, context)


# ---------------------------------------------------------------- webhook server

class WebhookServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing outlives a test

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), WebhookHandler)
        self.posts: list[tuple[str, str, Any]] = []
        self.status = 204
        self.hold = threading.Event()     # set: handlers wait for `release` before answering
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/{TOKEN}"


class WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
        if self.server.hold.is_set():
            self.server.release.wait(10)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def alert_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="app.alerts")
    return caplog


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "app.alerts" and r.levelno == logging.ERROR]


# ---------------------------------------------------------------- e-mail

def test_email_reaches_every_recipient(start_smtp: Callable[..., RunningSmtp],
                                       alert_log: pytest.LogCaptureFixture) -> None:
    smtp = start_smtp()
    alerter = make_alerter({
        "ALERT_EMAIL_TO": "ops@example.com, owner@example.org",
        "ALERT_EMAIL_FROM": "OrderHub <alerts@shop.example>",
        "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
    })
    before = sent("job_dead", "email", "sent")

    alerter.alert("PO-1042 to Acme could not be uploaded",
                  "Gave up after 8 attempts.\nLast error: connection refused",
                  kind="job_dead", ref="job-42")

    [got] = smtp.handler.received
    assert got.mail_from == "alerts@shop.example"
    assert got.rcpt_tos == ["ops@example.com", "owner@example.org"]
    assert got.message["Subject"] == "[OrderHub] PO-1042 to Acme could not be uploaded"
    assert got.message["To"] == "ops@example.com, owner@example.org"
    assert got.message["From"] == "OrderHub <alerts@shop.example>"
    assert got.message["Auto-Submitted"] == "auto-generated"
    text = got.message.get_content().replace("\r\n", "\n")
    assert "Gave up after 8 attempts.\nLast error: connection refused" in text
    assert "Kind: job_dead" in text and "Ref: job-42" in text and "2025-03-01T12:30:00" in text
    assert sent("job_dead", "email", "sent") == before + 1
    assert errors(alert_log) == [
        "ALERT kind=job_dead ref=job-42: PO-1042 to Acme could not be uploaded -- "
        "Gave up after 8 attempts. Last error: connection refused"]


def test_starttls_and_login(start_smtp: Callable[..., RunningSmtp], certificate: Certificate,
                            alert_log: pytest.LogCaptureFixture) -> None:
    smtp = start_smtp(tls_context=certificate.server_context, require_starttls=True,
                      authenticator=check_login, auth_required=True)
    alerter = make_alerter({
        "ALERT_EMAIL_TO": "ops@example.com",
        "SMTP_URL": f"smtp+starttls://{USER}@127.0.0.1:{smtp.port}",
        "SMTP_PASSWORD": PASSWORD,
        "SMTP_CA_FILE": str(certificate.ca_file),
    })

    alerter.alert("Stock feed is stale", "No feed from Acme for 26 hours.", kind="stock_stale")

    [got] = smtp.handler.received
    assert got.tls and got.authenticated
    assert got.rcpt_tos == ["ops@example.com"]
    assert got.message["Subject"] == "[OrderHub] Stock feed is stale"
    assert PASSWORD not in alert_log.text


def test_starttls_refuses_a_server_it_cannot_verify(
        start_smtp: Callable[..., RunningSmtp], certificate: Certificate,
        alert_log: pytest.LogCaptureFixture) -> None:
    smtp = start_smtp(tls_context=certificate.server_context, require_starttls=True)
    alerter = make_alerter({"ALERT_EMAIL_TO": "ops@example.com",
                            "SMTP_URL": f"smtp+starttls://127.0.0.1:{smtp.port}"})
    before = sent("job_dead", "email", "failed")

    alerter.alert("PO-7 dead", "body", kind="job_dead", ref="job-7")

    assert smtp.handler.received == []
    assert sent("job_dead", "email", "failed") == before + 1
    [failure] = [m for m in errors(alert_log) if "delivery failed" in m]
    assert "channel=email" in failure and "CERTIFICATE_VERIFY_FAILED" in failure


def test_smtps_implicit_tls(start_smtp: Callable[..., RunningSmtp],
                            certificate: Certificate) -> None:
    smtp = start_smtp(ssl_context=certificate.server_context)
    alerter = make_alerter({"ALERT_EMAIL_TO": "ops@example.com",
                            "SMTP_URL": f"smtps://127.0.0.1:{smtp.port}",
                            "SMTP_CA_FILE": str(certificate.ca_file)})

    alerter.alert("PO-8 dead", "body", kind="job_dead")

    [got] = smtp.handler.received
    assert got.message["Subject"] == "[OrderHub] PO-8 dead"


def test_login_on_a_loopback_relay(start_smtp: Callable[..., RunningSmtp]) -> None:
    smtp = start_smtp(authenticator=check_login, auth_require_tls=False)
    alerter = make_alerter({"ALERT_EMAIL_TO": "ops@example.com",
                            "SMTP_URL": f"smtp://{USER}@127.0.0.1:{smtp.port}",
                            "SMTP_PASSWORD": PASSWORD})

    alerter.alert("PO-9 dead", "body", kind="job_dead")

    [got] = smtp.handler.received
    assert got.authenticated and not got.tls


def test_wrong_password_is_logged_without_the_password(
        start_smtp: Callable[..., RunningSmtp], alert_log: pytest.LogCaptureFixture) -> None:
    smtp = start_smtp(authenticator=check_login, auth_require_tls=False)
    wrong = "wrong-pass-0c4d2e"
    alerter = make_alerter({"ALERT_EMAIL_TO": "ops@example.com",
                            "SMTP_URL": f"smtp://{USER}@127.0.0.1:{smtp.port}",
                            "SMTP_PASSWORD": wrong})
    before = sent("job_dead", "email", "failed")

    alerter.alert("PO-10 dead", "body", kind="job_dead", ref="job-10")

    assert smtp.handler.received == []
    assert sent("job_dead", "email", "failed") == before + 1
    [failure] = [m for m in errors(alert_log) if "delivery failed" in m]
    assert "SMTPAuthenticationError" in failure and "ref=job-10" in failure
    assert wrong not in alert_log.text


# ---------------------------------------------------------------- webhook

def test_webhook_gets_the_alert_as_json(webhook: WebhookServer) -> None:
    alerter = make_alerter({"ALERT_WEBHOOK_URL": webhook.url})
    before = sent("payload_quarantined", "webhook", "sent")

    alerter.alert("Delivery quarantined", "Shopify order 1001 could not be parsed.",
                  kind="payload_quarantined", ref="delivery-5")

    [(path, content_type, payload)] = webhook.posts
    assert path == f"/hooks/{TOKEN}"
    assert content_type == "application/json"
    assert payload == {"kind": "payload_quarantined", "subject": "Delivery quarantined",
                       "body": "Shopify order 1001 could not be parsed.", "ref": "delivery-5",
                       "at": "2025-03-01T12:30:00+00:00"}
    assert sent("payload_quarantined", "webhook", "sent") == before + 1


def test_webhook_error_status_is_a_failure(webhook: WebhookServer,
                                           alert_log: pytest.LogCaptureFixture) -> None:
    webhook.status = 500
    alerter = make_alerter({"ALERT_WEBHOOK_URL": webhook.url})
    before = sent("job_dead", "webhook", "failed")

    alerter.alert("PO-11 dead", "body", kind="job_dead", ref="job-11")

    assert len(webhook.posts) == 1
    assert sent("job_dead", "webhook", "failed") == before + 1
    [failure] = [m for m in errors(alert_log) if "delivery failed" in m]
    assert "channel=webhook" in failure and "HTTP 500" in failure
    assert TOKEN not in alert_log.text and "secret-token" not in alert_log.text


def test_smtp_down_still_sends_the_webhook(webhook: WebhookServer,
                                           alert_log: pytest.LogCaptureFixture) -> None:
    closed = free_port()
    alerter = make_alerter({"ALERT_EMAIL_TO": "ops@example.com",
                            "SMTP_URL": f"smtp://127.0.0.1:{closed}",
                            "ALERT_WEBHOOK_URL": webhook.url})
    failed, delivered = sent("job_dead", "email", "failed"), sent("job_dead", "webhook", "sent")

    alerter.alert("PO-12 dead", "body", kind="job_dead", ref="job-12")  # does not raise

    assert len(webhook.posts) == 1
    assert sent("job_dead", "email", "failed") == failed + 1
    assert sent("job_dead", "webhook", "sent") == delivered + 1
    [failure] = [m for m in errors(alert_log) if "delivery failed" in m]
    assert "channel=email" in failure and f"127.0.0.1:{closed}" in failure
    assert "ConnectionRefusedError" in failure


def test_webhook_down_is_logged_without_its_token(alert_log: pytest.LogCaptureFixture) -> None:
    alerter = make_alerter({"ALERT_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/h/{TOKEN}"})

    alerter.alert("PO-13 dead", "body", kind="job_dead")

    [failure] = [m for m in errors(alert_log) if "delivery failed" in m]
    assert "ConnectionError" in failure
    assert "secret-token" not in alert_log.text


def test_nothing_configured_only_logs(alert_log: pytest.LogCaptureFixture) -> None:
    before = sent("po_unacknowledged", "log", "sent")

    Alerter(AlertSettings()).alert("PO-14 not acknowledged", "Acme has not answered in 48 h.",
                                   kind="po_unacknowledged", ref="po-14")

    records = [r for r in alert_log.records if r.name == "app.alerts"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.ERROR, "ALERT kind=po_unacknowledged ref=po-14: PO-14 not acknowledged -- "
                        "Acme has not answered in 48 h.")]
    assert sent("po_unacknowledged", "log", "sent") == before + 1


# ---------------------------------------------------------------- slow targets

@pytest.fixture
def dripping_smtp() -> Iterator[int]:
    """A server that greets one continuation line at a time, each well inside a socket
    timeout, and never finishes: only a deadline on the whole exchange gets away from it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        listener.settimeout(5)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"220-still thinking\r\n")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_slow_smtp_server_costs_at_most_the_timeout(
        dripping_smtp: int, alert_log: pytest.LogCaptureFixture) -> None:
    alerter = make_alerter({"ALERT_EMAIL_TO": "ops@example.com",
                            "SMTP_URL": f"smtp://127.0.0.1:{dripping_smtp}",
                            "ALERT_TIMEOUT_SECONDS": "0.5"})
    before = sent("job_dead", "email", "failed")

    started = time.monotonic()
    alerter.alert("PO-15 dead", "body", kind="job_dead")
    elapsed = time.monotonic() - started

    assert 0.4 < elapsed < 1.5
    assert sent("job_dead", "email", "failed") == before + 1
    [failure] = [m for m in errors(alert_log) if "delivery failed" in m]
    assert "no answer within 0.5 s" in failure


def test_slow_webhook_costs_at_most_the_timeout(webhook: WebhookServer,
                                                alert_log: pytest.LogCaptureFixture) -> None:
    webhook.hold.set()
    alerter = make_alerter({"ALERT_WEBHOOK_URL": webhook.url, "ALERT_TIMEOUT_SECONDS": "0.5"})

    started = time.monotonic()
    alerter.alert("PO-16 dead", "body", kind="job_dead")
    elapsed = time.monotonic() - started

    assert elapsed < 1.5
    assert len([m for m in errors(alert_log) if "channel=webhook" in m]) == 1
