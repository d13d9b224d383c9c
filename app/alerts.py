"""Alerts for the operator: something needs a person (a dead job, a quarantined payload, ...).

Every alert is logged at ERROR level, so journald always has it; then, where configured, it is
e-mailed through an SMTP server and POSTed as JSON to a webhook. Delivering an alert never raises:
the alert is usually raised while handling some other failure, and must not become a second one.
Failed deliveries are logged and counted in `orderhub_alerts_total{result="failed"}`, which is
what a monitoring rule should watch.

SMTP_URL takes one of three forms, chosen by its scheme (never by a query string):

- `smtp://[user@]host[:port]`           plain SMTP, port 25 by default; a user (and so a password
                                         sent in clear) only to a loopback relay
- `smtp+starttls://[user@]host[:port]`  STARTTLS, required, port 587 by default
- `smtps://[user@]host[:port]`          implicit TLS, port 465 by default

The password comes from SMTP_PASSWORD only, never from the URL, so the URL can be logged and shown.
SMTP_CA_FILE, when set, is the only CA trusted for the SMTP server (instead of the system's).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Protocol
from urllib.parse import SplitResult, unquote, urlsplit

import requests
from prometheus_client import Counter

from app.errors import ConfigError

logger = logging.getLogger(__name__)

ALERTS = Counter(
    "orderhub_alerts_total",
    "Alerts raised, by kind, and their delivery by channel (log, email, webhook) and result "
    "(sent, failed). channel=\"log\" counts every alert raised.",
    ["kind", "channel", "result"],
)

DEFAULT_TIMEOUT_SECONDS = 10.0
SMTP_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
SUBJECT_PREFIX = "[OrderHub] "
LOG_BODY_CHARS = 1000


class AlertSink(Protocol):
    """Whatever services raise alerts into: `Alerter`, or a recording fake in tests."""

    def alert(self, subject: str, body: str, *, kind: str, ref: str | None = None) -> None: ...


@dataclass(frozen=True)
class SmtpServer:
    """Where alert e-mail is handed over, parsed from SMTP_URL."""

    security: str  # "plain", "starttls" or "tls"
    host: str
    port: int
    user: str | None

    def __str__(self) -> str:  # for logs: no user name, certainly no password
        scheme = next(s for s, (security, _) in SMTP_SCHEMES.items() if security == self.security)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go besides the log. The empty default sends them nowhere else."""

    email_to: tuple[str, ...] = ()
    email_from: str = "orderhub@localhost"
    smtp_url: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_ca_file: str | None = None
    webhook_url: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def __repr__(self) -> str:  # the webhook URL's path is often its secret token
        webhook = _origin(urlsplit(self.webhook_url)) if self.webhook_url else None
        return (f"AlertSettings(email_to={self.email_to!r}, smtp_url={self.smtp_url!r}, "
                f"webhook_url={webhook!r}, timeout_seconds={self.timeout_seconds!r})")


def alert_settings_from_env(env: Mapping[str, str]) -> AlertSettings:
    """Build `AlertSettings` from an environment mapping, raising `ConfigError` on a bad value."""
    email_to = _addresses(env, "ALERT_EMAIL_TO")
    smtp_url = _optional(env, "SMTP_URL")
    password = env.get("SMTP_PASSWORD") or None
    if password is not None and not password.strip():
        password = None
    if email_to and smtp_url is None:
        raise ConfigError("SMTP_URL", "missing, while ALERT_EMAIL_TO is set (the server that "
                          "sends alert e-mail, e.g. smtp+starttls://user@mail.example.com)")
    if smtp_url is not None and not email_to:
        raise ConfigError("ALERT_EMAIL_TO", "missing, while SMTP_URL is set (who gets alert "
                          "e-mail: addresses separated by commas)")
    if password is not None and smtp_url is None:
        raise ConfigError("SMTP_URL", "missing, while SMTP_PASSWORD is set")
    server = parse_smtp_url(smtp_url) if smtp_url is not None else None
    if server is not None and server.user is not None and password is None:
        raise ConfigError("SMTP_PASSWORD", f"missing, while SMTP_URL names the user "
                          f"{server.user!r}")
    if server is not None and server.user is None and password is not None:
        raise ConfigError("SMTP_PASSWORD", "set, but SMTP_URL names no user to log in as "
                          "(smtp+starttls://user@host)")
    ca_file = _ca_file(env, server)
    return AlertSettings(
        email_to=email_to,
        email_from=_sender(env),
        smtp_url=smtp_url,
        smtp_password=password,
        smtp_ca_file=ca_file,
        webhook_url=_webhook_url(env),
        timeout_seconds=_timeout(env),
    )


def parse_smtp_url(raw: str) -> SmtpServer:
    """Split an SMTP_URL into its parts; `ConfigError` naming SMTP_URL if it is not one.

    The messages never repeat the value: it may hold a password by mistake.
    """
    name = "SMTP_URL"
    url = urlsplit(raw.strip())
    if url.scheme not in SMTP_SCHEMES:
        raise ConfigError(name, f"scheme {url.scheme + '://' if url.scheme else '(none)'} is not "
                          "smtp://, smtp+starttls:// or smtps://")
    if url.password is not None:
        raise ConfigError(name, "contains a password: remove it from the URL and set SMTP_PASSWORD")
    if not url.hostname:
        raise ConfigError(name, "names no host (e.g. smtp+starttls://mail.example.com)")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ConfigError(name, "has a path or ?query after the host: only scheme://[user@]host"
                          "[:port] is understood (STARTTLS is smtp+starttls://)")
    try:
        explicit_port = url.port
    except ValueError:
        raise ConfigError(name, "has a port that is not a number from 1 to 65535") from None
    security, default_port = SMTP_SCHEMES[url.scheme]
    user = unquote(url.username) if url.username else None
    if user is not None and security == "plain" and not _is_loopback(url.hostname):
        raise ConfigError(name, "names a user on plain smtp:// to a remote host, which would send "
                          "SMTP_PASSWORD unencrypted: use smtp+starttls:// or smtps://")
    return SmtpServer(security, url.hostname, explicit_port or default_port, user)


class Alerter:
    """Raises alerts: always a log line, then e-mail and webhook where configured."""

    def __init__(self, settings: AlertSettings, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._clock = clock
        self._smtp = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
        self._secrets = _secret_parts(settings)

    def alert(self, subject: str, body: str, *, kind: str, ref: str | None = None) -> None:
        """Log the alert at ERROR, then send it to each configured target. Never raises.

        `kind` is a short fixed word (job_dead, payload_quarantined, ...): it is a metric label.
        Each target gets at most `timeout_seconds`.
        """
        logger.error("ALERT kind=%s ref=%s: %s -- %s", kind, ref or "-", _one_line(subject),
                     _one_line(body, LOG_BODY_CHARS))
        ALERTS.labels(kind=kind, channel="log", result="sent").inc()
        at = self._clock()
        if self._smtp is not None and self._settings.email_to:
            server = self._smtp
            self._deliver("email", str(server), kind, ref,
                          lambda: self._send_email(server, subject, body, kind, ref, at))
        if self._settings.webhook_url:
            url = self._settings.webhook_url
            self._deliver("webhook", _origin(urlsplit(url)), kind, ref,
                          lambda: self._post_webhook(url, subject, body, kind, ref, at))

    def _deliver(self, channel: str, target: str, kind: str, ref: str | None,
                 work: Callable[[], None]) -> None:
        try:
            _within(self._settings.timeout_seconds, work)
        except Exception as exc:  # an alert must never become a second failure
            ALERTS.labels(kind=kind, channel=channel, result="failed").inc()
            logger.error("alert delivery failed: kind=%s ref=%s channel=%s target=%s: %s",
                         kind, ref or "-", channel, target, self._reason(exc))
        else:
            ALERTS.labels(kind=kind, channel=channel, result="sent").inc()
            logger.info("alert delivered: kind=%s ref=%s channel=%s target=%s",
                        kind, ref or "-", channel, target)

    def _send_email(self, server: SmtpServer, subject: str, body: str, kind: str,
                    ref: str | None, at: datetime) -> None:
        settings = self._settings
        message = EmailMessage()
        message["Subject"] = SUBJECT_PREFIX + _one_line(subject)
        message["From"] = settings.email_from
        message["To"] = ", ".join(settings.email_to)
        message["Date"] = format_datetime(at)
        message["Message-ID"] = make_msgid("orderhub-alert", domain=_domain(settings.email_from))
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
        message.set_content(f"{body}\n\n--\nKind: {kind}\nRef: {ref or '-'}\n"
                            f"At: {at.isoformat()}\n")
        timeout = settings.timeout_seconds
        context = None
        if server.security != "plain":
            context = ssl.create_default_context(cafile=settings.smtp_ca_file)
        client: smtplib.SMTP
        if server.security == "tls":
            client = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with client:
            if server.security == "starttls":
                client.starttls(context=context)  # fails if not offered: never falls back
            if server.user is not None:
                client.login(server.user, settings.smtp_password or "")
            refused = client.send_message(message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)

    def _post_webhook(self, url: str, subject: str, body: str, kind: str, ref: str | None,
                      at: datetime) -> None:
        payload = {"kind": kind, "subject": subject, "body": body, "ref": ref,
                   "at": at.isoformat()}
        with requests.post(url, json=payload, timeout=self._settings.timeout_seconds,
                           allow_redirects=False) as response:
            if not 200 <= response.status_code < 300:
                raise RuntimeError(f"answered HTTP {response.status_code}")

    def _reason(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _one_line(text, 500)


def _within(seconds: float, work: Callable[[], None]) -> None:
    """Run `work` in a helper thread, waiting at most `seconds`; re-raise what it raised.

    Library timeouts bound each socket operation, not the whole exchange: a server answering one
    slow line at a time could hold the caller for many timeouts. An abandoned helper finishes on
    its own soon after, since its sockets carry the same timeout.
    """
    errors: list[Exception] = []
    done = threading.Event()

    def run() -> None:
        try:
            work()
        except Exception as exc:  # handed to the waiting thread
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="orderhub-alert", daemon=True).start()
    if not done.wait(seconds):
        raise TimeoutError(f"no answer within {seconds:g} s")
    if errors:
        raise errors[0]


def _secret_parts(settings: AlertSettings) -> tuple[str, ...]:
    """Strings that must not reach a log line: the password, the webhook's path and user info."""
    parts: list[str] = []
    if settings.smtp_password:
        parts.append(settings.smtp_password)
    if settings.webhook_url:
        url = urlsplit(settings.webhook_url)
        path = url.path + (f"?{url.query}" if url.query else "")
        parts += [p for p in (path, url.path, url.query, url.password or "") if len(p) > 1]
    return tuple(sorted(set(parts), key=len, reverse=True))


def _origin(url: SplitResult) -> str:
    host = url.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _valid_address(address: str) -> bool:
    local, at, domain = address.partition("@")
    bad = set(" \t\r\n,;<>\"'()[]\\")
    return bool(at and local and domain and "@" not in domain
                and not bad.intersection(address) and "." not in (domain[0], domain[-1]))


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _optional(env, name)
    if raw is None:
        return ()
    addresses = tuple(a.strip() for a in raw.split(",") if a.strip())
    for address in addresses:
        if not _valid_address(address):
            raise ConfigError(name, f"{address!r} is not an e-mail address (name@example.com; "
                              "separate several with commas)")
    return addresses


def _sender(env: Mapping[str, str]) -> str:
    raw = _optional(env, "ALERT_EMAIL_FROM")
    if raw is None:
        return f"orderhub@{socket.gethostname()}"
    display, address = parseaddr(raw)
    if "\n" in raw or "\r" in raw or not _valid_address(address):
        raise ConfigError("ALERT_EMAIL_FROM", f"{raw!r} is not an e-mail address "
                          "(alerts@example.com or OrderHub <alerts@example.com>)")
    return formataddr((display, address)) if display else address


def _ca_file(env: Mapping[str, str], server: SmtpServer | None) -> str | None:
    name = "SMTP_CA_FILE"
    path = _optional(env, name)
    if path is None:
        return None
    if server is None or server.security == "plain":
        raise ConfigError(name, "set, but SMTP_URL is not smtp+starttls:// or smtps:// (the CA "
                          "file only verifies a TLS server)")
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(name, f"{path!r} is not a readable PEM certificate file "
                          f"({exc.strerror or exc})") from None
    return path


def _webhook_url(env: Mapping[str, str]) -> str | None:
    name = "ALERT_WEBHOOK_URL"
    raw = _optional(env, name)
    if raw is None:
        return None
    url = urlsplit(raw)
    if url.scheme not in ("http", "https"):  # the value is not echoed: its path may be a token
        raise ConfigError(name, "is not an http:// or https:// URL")
    try:
        url.port  # noqa: B018 -- property raises on a bad port
    except ValueError:
        raise ConfigError(name, "has a port that is not a number from 1 to 65535") from None
    if not url.hostname:
        raise ConfigError(name, "names no host (e.g. https://hooks.example.com/orderhub)")
    return raw


def _timeout(env: Mapping[str, str]) -> float:
    name = "ALERT_TIMEOUT_SECONDS"
    raw = _optional(env, name)
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(name, f"must be a number of seconds greater than zero, got {raw!r}")
    return value
