"""The demo channel with DEMO_MODE=true: /webhooks/demo checked like Shopify's webhooks with the
demo's own secret, its orders read back by `orders sync` from the demo shop's folder, and
fulfillments recorded in the shop's fulfillments.jsonl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.channels.base import ShipmentPush
from app.channels.demo import SHOP_DOMAIN, DemoApi
from app.config import load_settings
from app.db import upgrade
from app.errors import ConfigError
from tests.conftest import (
    SHOPIFY_SECRET,
    apply_deliveries,
    auth,
    base_config,
    encode,
    hub_of,
    shopify_headers,
    shopify_payload,
)

DEMO_SECRET = "demo-webhook-secret-0123456789"


@pytest.fixture
def demo_app(tmp_path: Path) -> Iterator[Flask]:
    config = base_config(f"sqlite:///{tmp_path / 'orderhub.db'}")
    config.update(DEMO_MODE="true", DEMO_WEBHOOK_SECRET=DEMO_SECRET,
                  DEMO_DIR=str(tmp_path / "demo"))
    upgrade(config["DATABASE_URL"])
    app = create_app(config)
    yield app
    hub_of(app).db.dispose()


def test_signed_demo_delivery_becomes_a_demo_order(demo_app: Flask) -> None:
    client = demo_app.test_client()
    body = encode(shopify_payload())
    response = client.post("/webhooks/demo", data=body,
                           headers=shopify_headers(body, secret=DEMO_SECRET, shop=SHOP_DOMAIN))
    assert response.status_code == 200 and response.json["status"] == "accepted"
    assert apply_deliveries(demo_app) == {"processed": 1}
    orders = client.get("/api/orders", headers=auth()).json["orders"]
    assert [(o["channel"], o["account"], o["number"]) for o in orders] == [
        ("demo", SHOP_DOMAIN, "#1042")]


@pytest.mark.parametrize("secret", [SHOPIFY_SECRET, "not-the-demo-secret-0000"])
def test_demo_delivery_with_another_secret_is_refused(demo_app: Flask, secret: str) -> None:
    client = demo_app.test_client()
    body = encode(shopify_payload())
    response = client.post("/webhooks/demo", data=body,
                           headers=shopify_headers(body, secret=secret, shop=SHOP_DOMAIN))
    assert response.status_code == 401
    assert client.get("/api/orders", headers=auth()).json["orders"] == []


def test_demo_mode_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="DEMO_WEBHOOK_SECRET"):
        load_settings({**base_config("sqlite:///x.db"), "DEMO_MODE": "true"})
    assert load_settings(base_config("sqlite:///x.db")).demo_mode is False


def write_shop_order(store: Path, order_id: int, updated_at: datetime) -> None:
    order = shopify_payload()
    order.update(id=order_id, name=f"#{order_id % 10000}",
                 updated_at=updated_at.isoformat(), created_at=updated_at.isoformat())
    (store / "orders").mkdir(parents=True, exist_ok=True)
    (store / "orders" / f"{order_id}.json").write_bytes(encode(order))


def test_orders_sync_reads_the_demo_shop(demo_app: Flask, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    write_shop_order(tmp_path / "demo", 5_900_000_001_007, now - timedelta(minutes=5))
    result = demo_app.test_cli_runner().invoke(args=["orders", "sync"])
    assert result.exit_code == 0, result.output
    assert "demo:" in result.output and "1 new" in result.output
    orders = demo_app.test_client().get("/api/orders", headers=auth()).json["orders"]
    assert [(o["channel"], o["external_id"]) for o in orders] == [("demo", "5900000001007")]
    again = demo_app.test_cli_runner().invoke(args=["orders", "sync"])
    assert "0 new" in again.output and "1 unchanged" in again.output


def test_demo_api_lists_changes_since_oldest_first(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    write_shop_order(tmp_path, 2, now - timedelta(minutes=1))
    write_shop_order(tmp_path, 1, now - timedelta(minutes=2))
    write_shop_order(tmp_path, 3, now - timedelta(days=2))
    (tmp_path / "orders" / "broken.json").write_text("{")
    fetched = list(DemoApi(tmp_path).orders_updated_since(now - timedelta(hours=1)))
    assert [f.external_id for f in fetched] == ["1", "2"]
    assert json.loads(fetched[0].raw_body)["id"] == 1


def test_demo_api_records_each_fulfillment(tmp_path: Path) -> None:
    api = DemoApi(tmp_path / "demo")
    first = api.push_fulfillment("5900000001001", ShipmentPush(
        lines=(("15000000010010", 2),), carrier="DHL Paket", tracking_number="00340434",
        tracking_url="https://www.dhl.de/track?piececode=00340434"))
    api.push_fulfillment("5900000001002", ShipmentPush(lines=(("15000000010020", 1),)))
    records = [json.loads(line) for line in
               (tmp_path / "demo" / "fulfillments.jsonl").read_text().splitlines()]
    assert [r["order_id"] for r in records] == ["5900000001001", "5900000001002"]
    assert records[0]["line_items"] == [{"id": "15000000010010", "quantity": 2}]
    assert records[0]["tracking_number"] == "00340434" and records[0]["id"] == first.reference


def test_no_demo_without_demo_mode(tmp_path: Path) -> None:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'orderhub.db'}"))
    try:
        assert "demo" not in hub_of(app).channels
        assert "demo" not in hub_of(app).sync_targets
    finally:
        hub_of(app).db.dispose()
