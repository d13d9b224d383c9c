"""Shopify webhooks through the real app and a real database (SQLite, and PostgreSQL when
reachable): stored once, never backwards, nothing lost."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.metrics import WEBHOOK_DELIVERIES
from app.models import Order, OrderLine, WebhookEvent
from tests.conftest import (
    SHOPIFY_PREVIOUS_SECRET,
    apply_deliveries,
    encode,
    hub_of,
    shopify_headers,
    shopify_payload,
)


@dataclass(frozen=True)
class Delivered:
    status_code: int
    status: str  # what became of it once applied: processed, stale, duplicate, ...


def deliver(client: FlaskClient, payload: dict[str, Any], **kwargs: Any) -> Delivered:
    """Post a delivery and apply it, as the dispatcher does a moment later."""
    body = encode(payload)
    response = client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, **kwargs))
    status = response.json["status"] if response.json else ""
    if status == "accepted":
        (outcome,) = apply_deliveries(client.application).elements()
        status = outcome.value
    return Delivered(response.status_code, status)


def count(app: Flask, model: type[Any]) -> int:
    with hub_of(app).db.read_session() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def only_order(app: Flask) -> Order:
    with hub_of(app).db.read_session() as s:
        order = s.execute(select(Order)).scalar_one()
        order.lines  # noqa: B018  (load the lines before the session closes)
        return order


def events(app: Flask) -> list[WebhookEvent]:
    with hub_of(app).db.read_session() as s:
        return list(s.execute(select(WebhookEvent).order_by(WebhookEvent.received_at)).scalars())


def test_order_is_stored_with_lines_and_raw_event(app: Flask, client: FlaskClient) -> None:
    payload = shopify_payload()
    body = encode(payload)
    response = client.post("/webhooks/shopify", data=body,
                           headers=shopify_headers(body, webhook_id="delivery-1"))

    assert response.status_code == 200
    (event,) = events(app)
    assert response.json == {"status": "accepted", "event_id": str(event.id)}
    assert (event.status, event.raw_body, count(app, Order)) == ("pending", body, 0)

    assert apply_deliveries(app) == {"processed": 1}
    order = only_order(app)
    assert (order.channel, order.account, order.external_id) == (
        "shopify", "garden-goods.myshopify.com", "5813441806523")
    assert order.number == "#1042"
    assert order.total_price == Decimal("158.31")
    assert order.total_shipping == Decimal("9.99")
    assert order.financial_status == "paid"
    assert order.placed_at.isoformat() == "2026-11-20T14:14:03+00:00"
    assert order.shipping_address is not None
    assert order.shipping_address["city"] == "Drayton Valley"
    assert [(line.sku, line.quantity, line.price, line.vendor) for line in order.lines] == [
        ("AG-BED-CED-L", 2, Decimal("59.95"), "Agriest"),
        ("GS-SOIL-40", 1, Decimal("24.99"), "GreenSoil Co"),
        ("AG-TRWL", 1, Decimal("10.00"), "Agriest"),
    ]
    (event,) = events(app)
    assert event.raw_body == body  # the exact bytes, as evidence
    assert (event.delivery_id, event.topic, event.status) == ("delivery-1", "orders/create",
                                                              "processed")
    assert event.order_id == order.id
    assert event.api_version == "2026-10"
    assert event.event_id and event.triggered_at is not None


def test_duplicate_delivery_changes_nothing(app: Flask, client: FlaskClient) -> None:
    payload = shopify_payload()
    first = deliver(client, payload, webhook_id="same-delivery")
    before = only_order(app).updated_at
    second = deliver(client, payload, webhook_id="same-delivery")

    assert first.status_code == second.status_code == 200
    assert second.status == "duplicate"
    assert count(app, Order) == 1
    assert count(app, WebhookEvent) == 1
    assert count(app, OrderLine) == 3
    assert only_order(app).updated_at == before


def test_wrong_signature_is_refused_and_nothing_stored(app: Flask, client: FlaskClient) -> None:
    body = encode(shopify_payload())
    before = WEBHOOK_DELIVERIES.labels("shopify", "unauthorized")._value.get()
    bad = shopify_headers(body, secret="not-the-secret-at-all")
    missing = {k: v for k, v in shopify_headers(body).items() if k != "X-Shopify-Hmac-Sha256"}
    tampered = shopify_headers(body)

    assert client.post("/webhooks/shopify", data=body, headers=bad).status_code == 401
    assert client.post("/webhooks/shopify", data=body, headers=missing).status_code == 401
    assert client.post("/webhooks/shopify", data=body.replace(b"158.31", b"1.00"),
                       headers=tampered).status_code == 401
    assert count(app, WebhookEvent) == 0
    assert count(app, Order) == 0
    assert WEBHOOK_DELIVERIES.labels("shopify", "unauthorized")._value.get() == before + 3


def test_previous_secret_is_accepted_during_rotation(app: Flask, client: FlaskClient) -> None:
    response = deliver(client, shopify_payload(), secret=SHOPIFY_PREVIOUS_SECRET)
    assert response.status_code == 200
    assert count(app, Order) == 1


def test_body_over_the_limit_is_refused(database_url: str, config: dict[str, str]) -> None:
    from app import create_app
    from app.db import upgrade

    upgrade(database_url)
    app = create_app({**config, "MAX_BODY_BYTES": "4096"})
    body = encode(shopify_payload())
    assert len(body) > 4096
    response = app.test_client().post("/webhooks/shopify", data=body,
                                      headers=shopify_headers(body))
    assert response.status_code == 413
    assert count(app, WebhookEvent) == 0
    hub_of(app).db.dispose()


def test_unknown_channel_is_404(client: FlaskClient) -> None:
    assert client.post("/webhooks/nowhere", data=b"{}").status_code == 404


def test_other_topics_are_acknowledged_and_recorded_as_ignored(
    app: Flask, client: FlaskClient
) -> None:
    response = deliver(client, {"id": 1, "title": "A product"}, topic="products/update")
    assert response.status_code == 200
    assert response.status == "ignored"
    (event,) = events(app)
    assert event.status == "ignored"
    assert count(app, Order) == 0


def test_older_version_never_overwrites_newer(app: Flask, client: FlaskClient) -> None:
    created = shopify_payload()
    updated = copy.deepcopy(created)
    updated["updated_at"] = "2026-11-20T10:30:00-05:00"
    updated["note"] = "Changed: deliver to the front door"
    updated["line_items"][0]["current_quantity"] = 1

    assert deliver(client, updated, topic="orders/updated").status == "processed"
    late = deliver(client, created, topic="orders/create")  # arrives last, is older

    assert late.status_code == 200
    assert late.status == "stale"
    order = only_order(app)
    assert order.note == "Changed: deliver to the front door"
    assert order.lines[0].quantity == 1
    assert order.source_updated_at.isoformat() == "2026-11-20T15:30:00+00:00"
    stale = [e for e in events(app) if e.topic == "orders/create"][0]
    assert stale.status == "processed" and stale.note is not None and "stale" in stale.note
    assert stale.order_id == order.id


def test_update_changes_lines_and_keeps_removed_ones(app: Flask, client: FlaskClient) -> None:
    created = shopify_payload()
    deliver(client, created)
    edited = copy.deepcopy(created)
    edited["updated_at"] = "2026-11-20T11:00:00-05:00"
    edited["line_items"][0]["current_quantity"] = 3
    removed = edited["line_items"].pop(1)
    added = copy.deepcopy(edited["line_items"][1])
    added.update(id=14511244968199, sku="AG-GLOVES", title="Garden Gloves", price="8.50")
    edited["line_items"].append(added)

    assert deliver(client, edited, topic="orders/updated").status == "processed"
    lines = {line.external_id: line for line in only_order(app).lines}
    assert lines["14511244968123"].quantity == 3
    assert lines[str(removed["id"])].quantity == 0  # kept, nothing left to ship
    assert lines["14511244968199"].sku == "AG-GLOVES"
    assert lines["14511244968199"].price == Decimal("8.50")
    assert len(lines) == 4


def test_cancellation_marks_the_order_cancelled(app: Flask, client: FlaskClient) -> None:
    created = shopify_payload()
    deliver(client, created)
    cancelled = copy.deepcopy(created)
    cancelled.update(updated_at="2026-11-20T12:00:00-05:00",
                     cancelled_at="2026-11-20T12:00:00-05:00", cancel_reason="customer",
                     financial_status="refunded")
    deliver(client, cancelled, topic="orders/cancelled")
    # An update of the same second that does not show the cancellation cannot undo it.
    same_second = copy.deepcopy(created)
    same_second["updated_at"] = "2026-11-20T12:00:00-05:00"
    assert deliver(client, same_second, topic="orders/updated").status == "stale"

    order = only_order(app)
    assert order.status == "cancelled"
    assert order.cancel_reason == "customer"
    assert order.financial_status == "refunded"


def test_order_edit_event_is_linked_to_its_order(app: Flask, client: FlaskClient) -> None:
    deliver(client, shopify_payload())
    edit = {"order_edit": {
        "id": 78912328, "app_id": None, "created_at": "2026-11-20T10:00:00-05:00",
        "committed_at": "2026-11-20T10:00:01-05:00", "notify_customer": False,
        "order_id": 5813441806523, "staff_note": "", "user_id": 799407056,
        "line_items": {"additions": [], "removals": [{"id": 14511244968124, "delta": 1}]},
    }}
    response = deliver(client, edit, topic="orders/edited")
    assert response.status == "processed"
    edit_event = [e for e in events(app) if e.topic == "orders/edited"][0]
    assert edit_event.order_id == only_order(app).id
    assert edit_event.status == "processed"


def test_signed_but_unreadable_payload_is_quarantined(app: Flask, client: FlaskClient) -> None:
    body = b'{"id": 5813441806523, "line_items": "not a list", '
    response = client.post("/webhooks/shopify", data=body,
                           headers=shopify_headers(body, webhook_id="broken-1"))
    assert response.status_code == 200  # Shopify cannot fix it by retrying
    assert response.json["status"] == "accepted"
    assert apply_deliveries(app) == {"quarantined": 1}
    (event,) = events(app)
    assert event.status == "quarantined"
    assert event.error is not None and "not valid JSON" in event.error
    assert event.raw_body == body
    assert count(app, Order) == 0


def test_quarantined_delivery_replays_after_a_fix(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.channels import shopify
    from app.errors import PayloadInvalid

    real_parse = shopify.parse_order

    def buggy_parse(payload: Any) -> Any:
        raise PayloadInvalid("discount_applications: unsupported shape")

    monkeypatch.setattr(shopify, "parse_order", buggy_parse)
    response = deliver(client, shopify_payload(), webhook_id="needs-a-fix")
    assert response.status == "quarantined"
    assert count(app, Order) == 0
    (event,) = events(app)
    assert event.error == "discount_applications: unsupported shape"

    monkeypatch.setattr(shopify, "parse_order", real_parse)  # the fix is deployed
    result = app.test_cli_runner().invoke(args=["orders", "replay", str(event.id)])

    assert result.exit_code == 0, result.output
    assert "processed" in result.output
    order = only_order(app)
    assert order.number == "#1042"
    (event,) = events(app)
    assert (event.status, event.error, event.replays, event.order_id) == (
        "processed", None, 1, order.id)


def test_replay_by_delivery_id_and_of_a_still_broken_payload(
    app: Flask, client: FlaskClient
) -> None:
    body = b'{"id": 1, "created_at": "2026-11-20T09:00:00", "line_items": []}'
    client.post("/webhooks/shopify", data=body,
                headers=shopify_headers(body, webhook_id="still-broken"))
    assert apply_deliveries(app) == {"quarantined": 1}
    runner = app.test_cli_runner()

    result = runner.invoke(args=["orders", "replay", "still-broken"])
    assert result.exit_code == 1
    assert "quarantined" in result.output and "time zone" in result.output

    missing = runner.invoke(args=["orders", "replay", "no-such-delivery"])
    assert missing.exit_code == 2
    assert "no stored delivery" in missing.output


def test_payload_the_database_refuses_is_quarantined_not_lost(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import IntegrityError

    from app import intake

    def refusing_upsert(*args: Any, **kwargs: Any) -> Any:
        raise IntegrityError("INSERT INTO orders ...", {}, Exception("constraint failed"))

    monkeypatch.setattr(intake, "upsert_order", refusing_upsert)
    response = deliver(client, shopify_payload())
    assert response.status_code == 200
    (event,) = events(app)
    assert event.status == "quarantined"
    assert event.error is not None and "constraint failed" in event.error
    assert count(app, Order) == 0


def test_database_down_answers_503_so_shopify_retries(config: dict[str, str]) -> None:
    from app import create_app

    down = create_app({**config, "DATABASE_URL":
                       "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"})
    body = encode(shopify_payload())
    client = down.test_client()
    assert client.post("/webhooks/shopify", data=body,
                       headers=shopify_headers(body)).status_code == 503
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_other_shops_are_recorded_but_not_processed(database_url: str,
                                                     config: dict[str, str]) -> None:
    from app import create_app
    from app.db import upgrade

    upgrade(database_url)
    app = create_app({**config, "SHOPIFY_SHOP_DOMAIN": "Garden-Goods.myshopify.com"})
    client = app.test_client()
    other = deliver(client, shopify_payload(), shop="someone-else.myshopify.com")
    ours = deliver(client, shopify_payload())
    assert (other.status_code, other.status) == (200, "ignored")
    assert ours.status == "processed"
    assert count(app, Order) == 1
    assert count(app, WebhookEvent) == 2
    hub_of(app).db.dispose()


def test_same_second_updates_in_reverse_keep_the_later_trigger(app: Flask,
                                                               client: FlaskClient) -> None:
    first = shopify_payload()
    first.update(updated_at="2026-11-20T10:30:00-05:00", note="first edit")
    second = copy.deepcopy(first)
    second["note"] = "second edit, same second"
    deliver(client, second, topic="orders/updated", triggered_at="2026-11-20T15:30:00.700Z")
    late = deliver(client, first, topic="orders/updated", triggered_at="2026-11-20T15:30:00.200Z")
    assert late.status == "stale"
    assert only_order(app).note == "second edit, same second"


def test_a_delivery_a_worker_failed_on_stays_pending_for_the_next(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from app import intake

    real_upsert = intake.upsert_order

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE orders ...", {}, Exception("database is locked"))

    body = encode(shopify_payload())
    assert client.post("/webhooks/shopify", data=body,
                       headers=shopify_headers(body)).json["status"] == "accepted"
    monkeypatch.setattr(intake, "upsert_order", locked)
    with pytest.raises(OperationalError):
        apply_deliveries(app)
    (event,) = events(app)
    assert (event.status, count(app, Order)) == ("pending", 0)  # acknowledged, so kept

    monkeypatch.setattr(intake, "upsert_order", real_upsert)
    assert apply_deliveries(app) == {"processed": 1}
    assert only_order(app).number == "#1042"


def test_workers_applying_at_once_apply_each_delivery_once(app: Flask,
                                                           client: FlaskClient) -> None:
    for n in range(30):
        payload = shopify_payload()
        payload.update(id=7000 + n, name=f"#{7000 + n}")
        body = encode(payload)
        assert client.post("/webhooks/shopify", data=body,
                           headers=shopify_headers(body)).json["status"] == "accepted"

    results: list[Any] = []
    start = threading.Barrier(3)

    def work() -> None:
        start.wait()
        results.append(apply_deliveries(app))

    workers = [threading.Thread(target=work) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sum(r["processed"] for r in results) == 30  # none twice, none skipped
    assert count(app, Order) == 30
    assert {e.status for e in events(app)} == {"processed"}
