"""`orders sync`: orders whose webhooks were lost are found through Shopify's API (HTTP mocked
with `responses`, REST order payloads as webhooks carry them), taken in through the same intake
path, never duplicated and never applied over a newer webhook. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.models import Order, SyncRun
from tests.conftest import SHOP, auth, base_config, encode, hub_of, post_delivery, shopify_headers
from tests.integration.test_shopify_api import ORDERS, link, order_json

TOKEN = "shpat_0123456789abcdef0123456789abcdef"


@pytest.fixture
def config(database_url: str) -> dict[str, str]:
    return {**base_config(database_url), "SHOPIFY_ACCESS_TOKEN": TOKEN,
            "SHOPIFY_SHOP_DOMAIN": SHOP}


@pytest.fixture
def shopify() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def serve_pages(mock: responses.RequestsMock, *pages: list[dict[str, Any]]) -> None:
    for i, page in enumerate(pages):
        headers = {"Link": link(f"page{i + 2}", "next")} if i + 1 < len(pages) else {}
        mock.add(responses.GET, ORDERS, json={"orders": page}, headers=headers)


def orders(app: Flask) -> dict[str, Order]:
    with hub_of(app).db.read_session() as s:
        return {o.external_id: o for o in s.execute(select(Order)).scalars()}


def runs(app: Flask) -> list[SyncRun]:
    with hub_of(app).db.read_session() as s:
        return list(s.execute(select(SyncRun).order_by(SyncRun.started_at)).scalars())


def webhook(client: FlaskClient, order: dict[str, Any]) -> None:
    body = encode(order)
    assert post_delivery(client, body, shopify_headers(body)) == "processed"


def test_missed_orders_are_created_known_ones_not_duplicated(
        app: Flask, client: FlaskClient, shopify: responses.RequestsMock) -> None:
    known = order_json(5813441806523, "2026-11-20T09:14:05-05:00")
    webhook(client, known)
    missed = [order_json(5813441806524, "2026-11-20T10:00:00-05:00"),
              order_json(5813441806525, "2026-11-20T11:30:00-05:00")]
    for i, order in enumerate(missed):
        order["name"], order["order_number"] = f"#{1043 + i}", 1043 + i
    serve_pages(shopify, [known, missed[0]], [missed[1]])

    result = app.test_cli_runner().invoke(args=["orders", "sync", "--since",
                                                "2026-11-20T00:00:00Z"])

    assert result.exit_code == 0, result.output
    assert "3 read, 2 new, 0 updated, 1 unchanged" in result.output
    found = orders(app)
    assert sorted(found) == ["5813441806523", "5813441806524", "5813441806525"]
    assert found["5813441806524"].number == "#1043"
    [run] = runs(app)
    assert (run.status, run.fetched, run.created, run.unchanged) == ("ok", 3, 2, 1)

    serve_pages(shopify, [known, missed[0]], [missed[1]])
    again = app.test_cli_runner().invoke(args=["orders", "sync", "--since",
                                               "2026-11-20T00:00:00Z"])
    assert again.exit_code == 0 and "0 new" in again.output
    assert len(orders(app)) == 3


def test_an_older_page_never_overwrites_a_newer_webhook(
        app: Flask, client: FlaskClient, shopify: responses.RequestsMock) -> None:
    newer = order_json(5813441806523, "2026-11-20T12:00:00-05:00")
    newer["cancelled_at"] = "2026-11-20T12:00:00-05:00"
    newer["cancel_reason"] = "customer"
    webhook(client, newer)
    older = order_json(5813441806523, "2026-11-20T09:14:05-05:00")
    serve_pages(shopify, [older])

    result = app.test_cli_runner().invoke(args=["orders", "sync", "--since",
                                                "2026-11-20T00:00:00Z"])

    assert result.exit_code == 0, result.output
    assert "1 unchanged" in result.output
    assert orders(app)["5813441806523"].cancelled_at is not None


def test_the_next_run_starts_at_the_last_good_run_minus_the_overlap(
        app: Flask, shopify: responses.RequestsMock) -> None:
    serve_pages(shopify, [])
    first = app.test_cli_runner().invoke(args=["orders", "sync"])
    assert first.exit_code == 0, first.output
    serve_pages(shopify, [])
    second = app.test_cli_runner().invoke(args=["orders", "sync"])
    assert second.exit_code == 0
    one, two = runs(app)
    assert (one.started_at - one.since).total_seconds() == pytest.approx(86400, abs=5)
    assert (one.started_at - two.since).total_seconds() == pytest.approx(7200, abs=1)
    query = [call.request.url for call in shopify.calls][-1]
    assert "updated_at_min=" in str(query)


def test_shopify_refusing_the_token_fails_the_run(app: Flask,
                                                  shopify: responses.RequestsMock) -> None:
    shopify.add(responses.GET, ORDERS, status=401,
                json={"errors": "[API] Invalid API key or access token"})
    result = app.test_cli_runner().invoke(args=["orders", "sync"])
    assert result.exit_code == 1 and "FAILED" in result.output
    assert TOKEN not in result.output
    [run] = runs(app)
    assert run.status == "failed" and "SHOPIFY_ACCESS_TOKEN" in (run.error or "")


def test_the_api_queues_a_sync_that_the_dispatcher_runs(
        app: Flask, client: FlaskClient, shopify: responses.RequestsMock) -> None:
    from tests.integration.test_dispatch import dispatcher

    missed = order_json(5813441806524, "2026-11-20T10:00:00-05:00")
    serve_pages(shopify, [missed])
    response = client.post("/api/orders/sync", headers=auth(),
                           json={"since": "2026-11-20T00:00:00Z"})
    assert response.status_code == 202, response.json
    assert set(response.json["queued"]) == {"shopify"}
    assert orders(app) == {}  # nothing is fetched inside the request

    hub = hub_of(app)
    dispatcher(app, apis=hub.apis, sync_targets=hub.sync_targets).run(once=True)

    assert list(orders(app)) == ["5813441806524"]
    assert runs(app)[0].status == "ok"
    bad = client.post("/api/orders/sync", headers=auth(), json={"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json["error"]


def test_without_an_access_token_sync_says_so(sqlite_url: str) -> None:
    from app import create_app
    from app.db import upgrade

    upgrade(sqlite_url)
    app = create_app(base_config(sqlite_url))
    result = app.test_cli_runner().invoke(args=["orders", "sync"])
    assert result.exit_code == 2 and "SHOPIFY_ACCESS_TOKEN" in result.output
    assert app.test_client().post("/api/orders/sync", headers=auth()).status_code == 409
    hub_of(app).db.dispose()


def test_old_or_fulfilled_orders_never_seen_are_not_taken_in(
        app: Flask, shopify: responses.RequestsMock) -> None:
    placed_in_june = order_json(5813441806530, "2026-11-20T10:00:00-05:00")
    placed_in_june["created_at"] = placed_in_june["processed_at"] = "2026-06-02T10:00:00-05:00"
    fulfilled = order_json(5813441806531, "2026-11-20T10:05:00-05:00")
    fulfilled["fulfillment_status"] = "fulfilled"
    serve_pages(shopify, [placed_in_june, fulfilled])

    result = app.test_cli_runner().invoke(args=["orders", "sync", "--since",
                                                "2026-11-19T00:00:00Z"])

    assert result.exit_code == 0, result.output
    assert "0 new" in result.output and "2 unchanged" in result.output
    assert orders(app) == {}
