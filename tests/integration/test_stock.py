"""Stock: a supplier's feed on a real SFTP server (asyncssh on 127.0.0.1) becomes quantities,
only changed SKUs are pushed to Shopify (`responses`, Shopify-shaped answers), a sale re-pushes
at once, bad feeds are held with alerts. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.dispatch import folder_transports
from app.models import ChannelListing, InventoryLog, OutboxJob, StockFeed
from app.types import utcnow
from stock.sync import StockRun, sync_stock
from tests.conftest import (
    SHOP,
    auth,
    base_config,
    encode,
    hub_of,
    post_delivery,
    shopify_headers,
    shopify_payload,
)
from tests.integration.test_dispatch import RecordedAlerts, dispatcher
from tests.integration.test_shopify_api import TOKEN, FakeAdminGraphQL, FakeClock
from tests.integration.test_shopify_inventory import (
    SET,
    VARIANTS,
    WAREHOUSE,
    item_gid,
    set_ok,
    variant,
    variants,
)
from tests.sftp_server import PASSWORD, USER, SftpServer, _serve

FEED = "outbound/stock.csv"
SKUS = ["AG-BED-CED-L", "AG-TRWL", "AG-HOSE-25"]


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    for server in _serve(tmp_path):
        (server.root / "outbound").mkdir()
        yield server


@pytest.fixture
def config(database_url: str, tmp_path: Path, sftp: SftpServer) -> dict[str, str]:
    suppliers = tmp_path / "suppliers.toml"
    suppliers.write_text(f"""
[suppliers.agriest]
transport = "sftp://{USER}@127.0.0.1:{sftp.port}/inbound"
password_env = "AGRIEST_SFTP_PASSWORD"
host_key = "{sftp.public_key}"
sku_prefixes = ["AG-"]
stock_feed = "/{FEED}"
max_feed_age = "2d"

[suppliers.greensoil]
transport = "file://{tmp_path / 'greensoil'}"
vendors = ["GreenSoil Co"]
""")
    return {**base_config(database_url), "SUPPLIERS_FILE": str(suppliers),
            "AGRIEST_SFTP_PASSWORD": PASSWORD, "SHOPIFY_ACCESS_TOKEN": TOKEN,
            "SHOPIFY_SHOP_DOMAIN": SHOP, "SHOPIFY_LOCATION_ID": WAREHOUSE, "STOCK_BUFFER": "1"}


@pytest.fixture
def shopify() -> Iterator[FakeAdminGraphQL]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeAdminGraphQL(mock)


def write_feed(sftp: SftpServer, rows: dict[str, int], *, age_hours: float = 0) -> None:
    path = sftp.root / FEED
    path.write_text("sku,quantity,warehouse\n" + "".join(
        f"{sku},{qty},north\n" for sku, qty in rows.items()))
    stamp = time.time() - age_hours * 3600
    os.utime(path, (stamp, stamp))


def run(app: Flask, alerts: RecordedAlerts | None = None, **options: Any) -> StockRun:
    from app.channels.shopify_api import ShopifyAdmin

    hub = hub_of(app)
    clock = FakeClock()
    api = ShopifyAdmin(SHOP, TOKEN, api_version="2026-10", location_id=WAREHOUSE,
                       clock=clock, sleep=clock.sleep)
    return sync_stock(db=hub.db, book=hub.purchasing.book,
                      folders=folder_transports(hub.env), apis={"shopify": api},
                      rules=hub.stock_rules, alerts=alerts or RecordedAlerts(), now=utcnow,
                      **options)


def known_on_shopify(shopify: FakeAdminGraphQL) -> None:
    shopify.reply(VARIANTS, variants(*[variant(n, sku) for n, sku in enumerate(SKUS)]))


def pushed(shopify: FakeAdminGraphQL) -> dict[str, int]:
    """What the last inventorySetQuantities call set, by SKU."""
    items = {item_gid(n): sku for n, sku in enumerate(SKUS)}
    [*_, last] = shopify.calls(SET)
    return {items[q["inventoryItemId"]]: q["quantity"] for q in last["input"]["quantities"]}


def test_feed_to_shopify_then_only_the_changed_sku(app: Flask, sftp: SftpServer,
                                                   shopify: FakeAdminGraphQL) -> None:
    write_feed(sftp, {"AG-BED-CED-L": 12, "AG-TRWL": 40, "AG-HOSE-25": 0})
    known_on_shopify(shopify)
    shopify.reply(SET, set_ok())

    first = run(app)

    assert [f.status for f in first.feeds] == ["ok"]
    assert pushed(shopify) == {"AG-BED-CED-L": 11, "AG-TRWL": 39, "AG-HOSE-25": 0}  # buffer 1
    assert shopify.calls(SET)[0]["key"], "every set carries an idempotency key"

    write_feed(sftp, {"AG-BED-CED-L": 12, "AG-TRWL": 35, "AG-HOSE-25": 0})
    shopify.reply(SET, set_ok())
    second = run(app)
    assert pushed(shopify) == {"AG-TRWL": 34}
    assert second.pushes[0].pushed == 1 and len(shopify.calls(VARIANTS)) == 1  # ids cached
    with hub_of(app).db.read_session() as s:
        log = s.execute(select(InventoryLog).where(InventoryLog.sku == "AG-TRWL")
                        .order_by(InventoryLog.at)).scalars().all()
    assert [(e.before, e.after, e.reason) for e in log] == [(None, 39, "stock sync"),
                                                           (39, 34, "stock sync")]
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'orderhub_stock_pushes_total{channel="shopify",reason="stock sync"}' in metrics
    assert 'orderhub_stock_feed_age_seconds{status="ok",supplier="agriest"}' in metrics


def test_dry_run_pushes_nothing_and_prints_the_diff(app: Flask, sftp: SftpServer,
                                                    shopify: FakeAdminGraphQL) -> None:
    write_feed(sftp, {"AG-BED-CED-L": 12})
    known_on_shopify(shopify)
    shopify.reply(SET, set_ok())
    run(app)
    write_feed(sftp, {"AG-BED-CED-L": 20})
    result = app.test_cli_runner().invoke(args=["stock", "sync", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "shopify AG-BED-CED-L: 11 -> 19" in result.output
    assert "stock sync" in result.output and "1 SKU(s) read" in result.output
    assert len(shopify.calls(SET)) == 1   # only the first, real run pushed
    with hub_of(app).db.read_session() as s:   # and nothing was stored
        assert s.execute(select(ChannelListing.last_pushed)).scalar_one() == 11


def test_a_sale_re_pushes_its_skus_at_once(app: Flask, client: FlaskClient, sftp: SftpServer,
                                          shopify: FakeAdminGraphQL) -> None:
    write_feed(sftp, {"AG-BED-CED-L": 12, "AG-TRWL": 40, "AG-HOSE-25": 0})
    known_on_shopify(shopify)
    shopify.reply(SET, set_ok())
    run(app)

    body = encode(shopify_payload())   # 2 x AG-BED-CED-L, 1 x AG-TRWL, 1 x GS-SOIL-40
    assert post_delivery(client, body, shopify_headers(body)) == "processed"
    with hub_of(app).db.read_session() as s:
        [job] = s.execute(select(OutboxJob).where(OutboxJob.kind == "push_inventory")).scalars()
    assert job.lane == "channel:shopify:stock"
    assert job.data == {"skus": ["AG-BED-CED-L", "AG-TRWL", "GS-SOIL-40"]}

    from app.channels.shopify_api import ShopifyAdmin

    clock = FakeClock()
    api = ShopifyAdmin(SHOP, TOKEN, api_version="2026-10", location_id=WAREHOUSE, clock=clock,
                       sleep=clock.sleep)
    shopify.reply(VARIANTS, variants())   # GS-SOIL-40 is not on this shop
    shopify.reply(SET, set_ok())
    dispatcher(app, apis={"shopify": api}, stock_rules=hub_of(app).stock_rules).run(once=True)

    assert pushed(shopify) == {"AG-BED-CED-L": 9, "AG-TRWL": 38}   # reserved 2 and 1
    with hub_of(app).db.read_session() as s:
        sold = s.execute(select(InventoryLog).where(InventoryLog.reason == "sale")).scalars()
        assert sorted((e.sku, e.before, e.after) for e in sold) == [
            ("AG-BED-CED-L", 11, 9), ("AG-TRWL", 39, 38)]


def test_a_stale_feed_is_not_trusted_and_alerted_once(app: Flask, sftp: SftpServer,
                                                      shopify: FakeAdminGraphQL) -> None:
    write_feed(sftp, {"AG-BED-CED-L": 12}, age_hours=72)
    alerts = RecordedAlerts()
    first = run(app, alerts)
    run(app, alerts)
    assert first.feeds[0].status == "stale" and first.failed
    assert [a["kind"] for a in alerts.alerts] == ["stock_feed_stale"]
    assert shopify.calls(SET) == []


def test_a_feed_dropping_by_half_is_held_until_accepted(app: Flask, sftp: SftpServer,
                                                        shopify: FakeAdminGraphQL) -> None:
    write_feed(sftp, {"AG-BED-CED-L": 100, "AG-TRWL": 100})
    known_on_shopify(shopify)
    shopify.reply(SET, set_ok())
    run(app)
    write_feed(sftp, {"AG-BED-CED-L": 10, "AG-TRWL": 10})
    alerts = RecordedAlerts()

    held = run(app, alerts)

    assert held.feeds[0].status == "held"
    assert [a["kind"] for a in alerts.alerts] == ["stock_feed_held"]
    assert "--accept-feed agriest" in alerts.alerts[0]["body"]
    assert len(shopify.calls(SET)) == 1
    with hub_of(app).db.read_session() as s:
        assert s.get(StockFeed, "agriest").status == "held"

    shopify.reply(SET, set_ok())
    accepted = run(app, alerts, accept_feed="agriest")
    assert accepted.feeds[0].status == "ok"
    assert pushed(shopify) == {"AG-BED-CED-L": 9, "AG-TRWL": 9}


def test_the_inventory_api(app: Flask, client: FlaskClient, sftp: SftpServer,
                           shopify: FakeAdminGraphQL) -> None:
    write_feed(sftp, {"AG-BED-CED-L": 12, "AG-TRWL": 40})
    known_on_shopify(shopify)
    shopify.reply(SET, set_ok())
    run(app)

    listing = client.get("/api/inventory", headers=auth()).json["inventory"]
    bed = next(i for i in listing if i["sku"] == "AG-BED-CED-L")
    assert bed["feed_total"] == 12 and bed["reserved"] == 0
    assert bed["suppliers"][0]["supplier"] == "agriest"
    assert bed["channels"]["shopify"]["available"] == 11
    assert bed["channels"]["shopify"]["last_pushed"] == 11

    changed = client.patch("/api/inventory/AG-BED-CED-L", headers=auth(),
                           json={"channel": "shopify", "quantity": 3,
                                 "reason": "display model only"})
    assert changed.status_code == 200, changed.json
    assert changed.json["channels"]["shopify"]["available"] == 3
    one = client.get("/api/inventory/AG-BED-CED-L", headers=auth()).json
    assert one["log"][0]["reason"] == "manual: display model only"
    bad = client.patch("/api/inventory/AG-BED-CED-L", headers=auth(),
                       json={"channel": "shopify", "quantity": -1, "reason": "x"})
    assert bad.status_code == 400 and "quantity" in bad.json["error"]
    no_reason = client.patch("/api/inventory/AG-BED-CED-L", headers=auth(),
                             json={"channel": "shopify", "quantity": 1})
    assert no_reason.status_code == 400 and "reason" in no_reason.json["error"]
    assert client.get("/api/inventory/NOPE", headers=auth()).status_code == 404
    assert client.post("/api/inventory/sync", headers=auth()).status_code == 202
    with hub_of(app).db.read_session() as s:
        kinds = {j.kind for j in s.execute(select(OutboxJob)).scalars()}
    assert {"push_inventory", "sync_stock"} <= kinds
