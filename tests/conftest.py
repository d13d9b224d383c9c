"""Fixtures shared by every test: settings, databases (SQLite always, PostgreSQL when
reachable), the app, and signed Shopify deliveries."""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.channels.shopify import sign
from app.db import upgrade
from app.hub import Hub
from app.intake import Outcome, apply_pending

FIXTURES = Path(__file__).parent / "fixtures"
SHOPIFY_SECRET = "shpss_test_secret_0123456789abcdef"
SHOPIFY_PREVIOUS_SECRET = "shpss_old_secret_fedcba9876543210"
API_TOKEN = "test-api-token-0123456789"
SHOP = "garden-goods.myshopify.com"


def base_config(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-0123456789",
        "ORDERHUB_API_TOKEN": API_TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
        "SHOPIFY_WEBHOOK_SECRET_PREVIOUS": SHOPIFY_PREVIOUS_SECRET,
        "LOG_LEVEL": "WARNING",
    }


# ---------------------------------------------------------------- databases

def postgres_admin_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_ADMIN_URL") or None


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("TEST_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL required (TEST_REQUIRE_POSTGRES is set) but {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of this test's own, dropped afterwards."""
    admin = postgres_admin_url()
    if admin is None:
        _postgres_unavailable("TEST_POSTGRES_ADMIN_URL is not set "
                              "(e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    assert admin is not None
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"orderhub_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    plain = make_url(admin).set(drivername="postgresql")
    conninfo = plain.render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _postgres_unavailable(f"cannot connect to {plain.render_as_string()}: {exc}")
    try:
        yield plain.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orderhub.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


# ---------------------------------------------------------------- the app

@pytest.fixture
def config(database_url: str) -> dict[str, str]:
    return base_config(database_url)


@pytest.fixture
def app(config: dict[str, str]) -> Iterator[Flask]:
    upgrade(config["DATABASE_URL"])
    application = create_app(config)
    yield application
    hub_of(application).db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def hub_of(app: Flask) -> Hub:
    services: Hub = app.extensions["orderhub"]
    return services


def apply_deliveries(app: Flask) -> Counter[Outcome]:
    """Apply the accepted webhook deliveries, as the dispatcher does; how each one ended."""
    services = hub_of(app)
    return apply_pending(services.db, channels=services.channels,
                         purchasing=services.purchasing, limit=10_000)


def post_delivery(client: FlaskClient, body: bytes, headers: dict[str, str]) -> str:
    """Post a webhook delivery and apply it; what became of it (processed, stale, duplicate,
    ignored, quarantined)."""
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 200, response.json
    status: str = response.json["status"]
    if status != Outcome.ACCEPTED:
        return status
    outcomes = apply_deliveries(client.application)
    assert outcomes.total() == 1, outcomes
    return next(iter(outcomes)).value


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


# ---------------------------------------------------------------- Shopify deliveries

def shopify_payload(name: str = "orders_create") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "shopify" / f"{name}.json").read_text())
    return data


def shopify_headers(
    body: bytes,
    *,
    topic: str = "orders/create",
    webhook_id: str | None = None,
    secret: str = SHOPIFY_SECRET,
    shop: str = SHOP,
    triggered_at: str = "2026-11-20T14:14:05.123456789Z",
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(secret, body),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": triggered_at,
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
