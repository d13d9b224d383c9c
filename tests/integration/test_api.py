"""The orders API as an operator's script uses it: authenticated, newest first, filtered,
paginated, one order with its lines and the deliveries behind it."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import auth, encode, post_delivery, shopify_headers, shopify_payload


def make_order(client: FlaskClient, n: int, *, placed: str, cancelled: bool = False,
               shop: str = "garden-goods.myshopify.com") -> None:
    payload: dict[str, Any] = shopify_payload()
    payload.update(id=900 + n, name=f"#{1000 + n}", created_at=placed, updated_at=placed)
    if cancelled:
        payload.update(cancelled_at=placed, cancel_reason="customer")
    body = encode(payload)
    post_delivery(client, body, shopify_headers(body, shop=shop))


def test_api_needs_the_token(client: FlaskClient) -> None:
    assert client.get("/api/orders").status_code == 401
    wrong = client.get("/api/orders", headers={"Authorization": "Bearer wrong-token"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    basic = client.get("/api/orders", headers={"Authorization": "Basic dGVzdA=="})
    assert basic.status_code == 401
    assert client.get("/api/orders", headers=auth()).status_code == 200


def test_orders_newest_first_with_pages(app: Flask, client: FlaskClient) -> None:
    for n in range(5):
        make_order(client, n, placed=f"2026-11-2{n}T10:00:00+00:00")

    first = client.get("/api/orders?limit=2", headers=auth()).json
    assert [o["number"] for o in first["orders"]] == ["#1004", "#1003"]
    second = client.get(f"/api/orders?limit=2&cursor={first['next_cursor']}",
                        headers=auth()).json
    assert [o["number"] for o in second["orders"]] == ["#1002", "#1001"]
    third = client.get(f"/api/orders?limit=2&cursor={second['next_cursor']}",
                       headers=auth()).json
    assert [o["number"] for o in third["orders"]] == ["#1000"]
    assert third["next_cursor"] is None


def test_orders_filters(client: FlaskClient) -> None:
    make_order(client, 1, placed="2026-11-01T10:00:00+00:00")
    make_order(client, 2, placed="2026-11-10T10:00:00+00:00", cancelled=True)
    make_order(client, 3, placed="2026-11-20T10:00:00+00:00")

    def numbers(query: str) -> list[str]:
        body = client.get(f"/api/orders?{query}", headers=auth()).json
        return [o["number"] for o in body["orders"]]

    assert numbers("status=cancelled") == ["#1002"]
    assert numbers("status=needs_attention") == ["#1003", "#1001"]  # no suppliers here
    assert numbers("since=2026-11-05") == ["#1003", "#1002"]
    assert numbers("since=2026-11-05&until=2026-11-15T00:00:00Z") == ["#1002"]
    assert numbers("channel=shopify") == ["#1003", "#1002", "#1001"]
    assert numbers("channel=etsy") == []


def test_bad_query_parameters_are_named(client: FlaskClient) -> None:
    for query, name in [("limit=lots", "limit"), ("limit=0", "limit"), ("limit=1000", "limit"),
                        ("since=yesterday", "since"), ("until=2026-13-01", "until"),
                        ("cursor=%%%", "cursor")]:
        response = client.get(f"/api/orders?{query}", headers=auth())
        assert response.status_code == 400, query
        assert response.json["error"].startswith(name), response.json


def test_one_order_with_lines_and_events(client: FlaskClient) -> None:
    make_order(client, 7, placed="2026-11-20T10:00:00+00:00")
    listed = client.get("/api/orders", headers=auth()).json["orders"][0]

    order = client.get(f"/api/orders/{listed['id']}", headers=auth()).json
    assert order["number"] == "#1007"
    assert order["total_price"] == "158.31"  # money as exact strings
    assert order["placed_at"] == "2026-11-20T10:00:00+00:00"
    assert [line["sku"] for line in order["lines"]] == ["AG-BED-CED-L", "GS-SOIL-40", "AG-TRWL"]
    assert order["lines"][0]["price"] == "59.95"
    assert len(order["event_ids"]) == 1
    assert order["events"][0]["topic"] == "orders/create"


def test_unknown_order_is_404(client: FlaskClient) -> None:
    assert client.get("/api/orders/not-a-uuid", headers=auth()).status_code == 404
    missing = client.get("/api/orders/01a2131f-0efa-726e-8b30-bc0c008230d4", headers=auth())
    assert missing.status_code == 404


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}


def test_out_of_range_and_hostile_parameters_are_400(client: FlaskClient) -> None:
    import base64

    naive_cursor = base64.urlsafe_b64encode(
        b"2026-11-20T10:00:00|01a2131f-0efa-726e-8b30-bc0c008230d4").decode().rstrip("=")
    for url, name in [
        ("/api/orders?since=0001-01-01T00:00%2B05:00", "since"),
        ("/api/orders?until=9999-12-31T23:59:59-05:00", "until"),
        (f"/api/orders?cursor={naive_cursor}", "cursor"),
        ("/api/orders?status=%00", "status"),
        ("/api/purchase-orders?supplier=a%00b", "supplier"),
        ("/api/purchase-orders?offset=99999999999999999999", "offset"),
    ]:
        response = client.get(url, headers=auth())
        assert response.status_code == 400, url
        assert response.json["error"].startswith(name), response.json
