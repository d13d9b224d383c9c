"""Settings: every bad or missing value stops the start with a message naming it."""

from __future__ import annotations

import pytest

from app.config import load_settings
from app.errors import ConfigError

GOOD = {
    "SECRET_KEY": "a-long-enough-secret-key",
    "ORDERHUB_API_TOKEN": "a-long-enough-api-token",
}


def test_defaults() -> None:
    settings = load_settings(GOOD)
    assert settings.database_url == "sqlite:///var/orderhub.db"
    assert settings.max_body_bytes == 2 * 1024 * 1024
    assert settings.shopify_webhook_secrets == ()
    assert settings.dashboard_password is None  # no dashboard until a password is set
    assert "a-long-enough" not in repr(settings)  # secrets never printed


def test_dispatcher_share_of_the_sqlite_lock() -> None:
    assert load_settings(GOOD).intake_lock_share == 0.02
    assert load_settings(GOOD).intake_max_delay_seconds == 300.0
    settings = load_settings({**GOOD, "DISPATCH_INTAKE_LOCK_SHARE": "1",
                              "DISPATCH_INTAKE_MAX_DELAY_SECONDS": "15"})
    assert (settings.intake_lock_share, settings.intake_max_delay_seconds) == (1.0, 15.0)


def test_postgres_url_uses_psycopg3() -> None:
    settings = load_settings({**GOOD, "DATABASE_URL": "postgres://u:p@db.internal/orders"})
    assert settings.database_url == "postgresql+psycopg://u:p@db.internal/orders"


def test_rotation_keeps_both_secrets_current_first() -> None:
    settings = load_settings({**GOOD, "SHOPIFY_WEBHOOK_SECRET": "new-secret",
                              "SHOPIFY_WEBHOOK_SECRET_PREVIOUS": "old-secret"})
    assert settings.shopify_webhook_secrets == ("new-secret", "old-secret")


@pytest.mark.parametrize(
    ("override", "name", "words"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY", "missing"),
        ({"ORDERHUB_API_TOKEN": "short"}, "ORDERHUB_API_TOKEN", "too short"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL", "not supported"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "not a database URL"),
        ({"DATABASE_URL": "sqlite://"}, "DATABASE_URL", "file path"),
        ({"MAX_BODY_BYTES": "2MB"}, "MAX_BODY_BYTES", "not a whole number"),
        ({"MAX_BODY_BYTES": "-1"}, "MAX_BODY_BYTES", "greater than zero"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", "not one of"),
        ({"SHOPIFY_WEBHOOK_SECRET_PREVIOUS": "old"}, "SHOPIFY_WEBHOOK_SECRET", "missing"),
        ({"DASHBOARD_PASSWORD": "elevenchars"}, "DASHBOARD_PASSWORD", "at least 12"),
        ({"DISPATCH_INTAKE_LOCK_SHARE": "0"}, "DISPATCH_INTAKE_LOCK_SHARE", "greater than zero"),
        ({"DISPATCH_INTAKE_LOCK_SHARE": "1.5"}, "DISPATCH_INTAKE_LOCK_SHARE", "at most 1"),
        ({"DISPATCH_INTAKE_LOCK_SHARE": "10%"}, "DISPATCH_INTAKE_LOCK_SHARE", "not a number"),
        ({"DISPATCH_INTAKE_MAX_DELAY_SECONDS": "0"}, "DISPATCH_INTAKE_MAX_DELAY_SECONDS",
         "greater than zero"),
    ],
)
def test_bad_settings_are_named(override: dict[str, str], name: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, **override})
    assert caught.value.name == name
    assert words in str(caught.value)
    assert str(caught.value).startswith(name)


def test_database_password_never_printed() -> None:
    settings = load_settings({**GOOD, "DATABASE_URL": "postgresql://orderhub:s3cretpw@db/x"})
    assert "s3cretpw" not in repr(settings)
    assert "db/x" in repr(settings)
