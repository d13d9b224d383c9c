"""Alert settings: each bad or missing value stops the start with a message naming it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from app.alerts import SmtpServer, alert_settings_from_env, parse_smtp_url
from app.errors import ConfigError

EMAIL = {
    "ALERT_EMAIL_TO": "ops@example.com",
    "SMTP_URL": "smtp+starttls://alerts@mail.example.com",
    "SMTP_PASSWORD": "smtp-password-not-to-be-shown",
}


def test_nothing_set_means_log_only() -> None:
    settings = alert_settings_from_env({})
    assert settings.email_to == ()
    assert settings.smtp_url is None
    assert settings.webhook_url is None
    assert settings.timeout_seconds == 10.0
    assert settings.email_from == f"orderhub@{socket.gethostname()}"


def test_everything_set() -> None:
    settings = alert_settings_from_env({
        **EMAIL,
        "ALERT_EMAIL_TO": " ops@example.com, owner@example.org ,",
        "ALERT_EMAIL_FROM": "OrderHub <alerts@example.com>",
        "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/token-secret",
        "ALERT_TIMEOUT_SECONDS": "2.5",
    })
    assert settings.email_to == ("ops@example.com", "owner@example.org")
    assert settings.email_from == "OrderHub <alerts@example.com>"
    assert settings.smtp_url == "smtp+starttls://alerts@mail.example.com"
    assert settings.smtp_password == "smtp-password-not-to-be-shown"
    assert settings.webhook_url == "https://hooks.example.com/services/T0/B0/token-secret"
    assert settings.timeout_seconds == 2.5
    shown = repr(settings)
    assert "smtp-password" not in shown
    assert "token-secret" not in shown
    assert "https://hooks.example.com" in shown


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://relay.internal", SmtpServer("plain", "relay.internal", 25, None)),
        ("smtp://orderhub@127.0.0.1:2525", SmtpServer("plain", "127.0.0.1", 2525, "orderhub")),
        ("smtp+starttls://alerts%40example.com@mail.example.com",
         SmtpServer("starttls", "mail.example.com", 587, "alerts@example.com")),
        ("smtps://mail.example.com", SmtpServer("tls", "mail.example.com", 465, None)),
        ("smtps://u@[2001:db8::25]:2465/", SmtpServer("tls", "2001:db8::25", 2465, "u")),
    ],
)
def test_smtp_url_forms(url: str, server: SmtpServer) -> None:
    assert parse_smtp_url(url) == server


def test_smtp_server_shows_no_user() -> None:
    assert str(parse_smtp_url("smtp+starttls://alerts@mail.example.com")) == (
        "smtp+starttls://mail.example.com:587")


@pytest.mark.parametrize(
    ("override", "name", "words"),
    [
        ({"ALERT_EMAIL_TO": "ops"}, "ALERT_EMAIL_TO", "not an e-mail address"),
        ({"ALERT_EMAIL_TO": "ops@example.com; boss@example.com"}, "ALERT_EMAIL_TO",
         "not an e-mail address"),
        ({"ALERT_EMAIL_FROM": "orderhub"}, "ALERT_EMAIL_FROM", "not an e-mail address"),
        ({"SMTP_URL": ""}, "SMTP_URL", "missing, while ALERT_EMAIL_TO is set"),
        ({"ALERT_EMAIL_TO": ""}, "ALERT_EMAIL_TO", "missing, while SMTP_URL is set"),
        ({"SMTP_URL": "mail.example.com"}, "SMTP_URL", "is not smtp://"),
        ({"SMTP_URL": "http://mail.example.com"}, "SMTP_URL", "is not smtp://"),
        ({"SMTP_URL": "smtp://mail.example.com?starttls=true"}, "SMTP_URL", "smtp+starttls://"),
        ({"SMTP_URL": "smtps://alerts@"}, "SMTP_URL", "names no host"),
        ({"SMTP_URL": "smtps://mail.example.com:99999"}, "SMTP_URL", "port"),
        ({"SMTP_URL": "smtp://alerts@mail.example.com"}, "SMTP_URL", "unencrypted"),
        ({"SMTP_URL": "smtps://mail.example.com"}, "SMTP_PASSWORD", "names no user"),
        ({"SMTP_PASSWORD": ""}, "SMTP_PASSWORD", "missing, while SMTP_URL names the user"),
        ({"SMTP_CA_FILE": "/nonexistent/ca.pem"}, "SMTP_CA_FILE", "not a readable PEM"),
        ({"SMTP_URL": "smtp://127.0.0.1", "SMTP_PASSWORD": "", "SMTP_CA_FILE": "/etc/ca.pem"},
         "SMTP_CA_FILE", "not smtp+starttls:// or smtps://"),
        ({"ALERT_WEBHOOK_URL": "ftp://hooks.example.com/x"}, "ALERT_WEBHOOK_URL", "http"),
        ({"ALERT_WEBHOOK_URL": "hooks.example.com/x"}, "ALERT_WEBHOOK_URL", "http"),
        ({"ALERT_WEBHOOK_URL": "https:///x"}, "ALERT_WEBHOOK_URL", "names no host"),
        ({"ALERT_WEBHOOK_URL": "https://h:port/x"}, "ALERT_WEBHOOK_URL", "port"),
        ({"ALERT_TIMEOUT_SECONDS": "ten"}, "ALERT_TIMEOUT_SECONDS", "not a number"),
        ({"ALERT_TIMEOUT_SECONDS": "0"}, "ALERT_TIMEOUT_SECONDS", "greater than zero"),
        ({"ALERT_TIMEOUT_SECONDS": "nan"}, "ALERT_TIMEOUT_SECONDS", "greater than zero"),
    ],
)
def test_bad_settings_are_named(override: dict[str, str], name: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        alert_settings_from_env({**EMAIL, **override})
    assert caught.value.name == name
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{name}: ")


def test_password_without_any_smtp_url_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        alert_settings_from_env({"SMTP_PASSWORD": "secret-secret"})
    assert caught.value.name == "SMTP_URL"


def test_password_inside_smtp_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError) as caught:
        alert_settings_from_env({**EMAIL, "SMTP_URL": "smtps://alerts:hunter2-pass@mail.example.com"})
    assert caught.value.name == "SMTP_URL"
    assert "SMTP_PASSWORD" in caught.value.reason
    assert "hunter2" not in str(caught.value)


def test_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    with pytest.raises(ConfigError) as caught:
        alert_settings_from_env({**EMAIL, "SMTP_CA_FILE": str(not_pem)})
    assert caught.value.name == "SMTP_CA_FILE"

