"""Shipment notices from a supplier's SFTP folder to shipped order lines: `shipments poll`
against a real asyncssh SFTP server on 127.0.0.1, a real database (SQLite and PostgreSQL), and
the documented example files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.dispatch import folder_transports
from app.models import InboundFile, Order, OrderLine, OutboxJob, Shipment
from app.types import utcnow
from shipment.imports import PollRun, poll_shipments
from tests.conftest import FIXTURES, base_config, encode, hub_of, shopify_headers, shopify_payload
from tests.integration.test_dispatch import RecordedAlerts, dispatcher
from tests.sftp_server import PASSWORD, USER, SftpServer, _serve

NOTICES = FIXTURES / "shipments"
FOLDER = "outbound/shipments"


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    for server in _serve(tmp_path):
        (server.root / FOLDER).mkdir(parents=True)
        yield server


@pytest.fixture
def config(database_url: str, tmp_path: Path, sftp: SftpServer) -> dict[str, str]:
    suppliers = tmp_path / "suppliers.toml"
    suppliers.write_text(f"""
[suppliers.agriest]
transport = "sftp://{USER}@127.0.0.1:{sftp.port}/inbound"
password_env = "AGRIEST_SFTP_PASSWORD"
host_key = "{sftp.public_key}"
format = "ubl"
sku_prefixes = ["AG-"]
shipments_path = "/{FOLDER}"

[suppliers.greensoil]
transport = "file://{tmp_path / 'greensoil'}"
vendors = ["GreenSoil Co"]
""")
    return {**base_config(database_url), "SUPPLIERS_FILE": str(suppliers),
            "AGRIEST_SFTP_PASSWORD": PASSWORD, "SHIPMENTS_SETTLE_SECONDS": "0"}


@pytest.fixture
def sent(app: Flask, client: FlaskClient) -> None:
    """Order #1042 taken and its purchase orders on the suppliers' servers."""
    body = encode(shopify_payload())
    assert client.post("/webhooks/shopify", data=body,
                       headers=shopify_headers(body)).status_code == 200
    assert dispatcher(app).run(once=True).sent == 2


def poll(app: Flask, alerts: RecordedAlerts | None = None, **options: Any) -> PollRun:
    hub = hub_of(app)
    settings: dict[str, Any] = {"settle_seconds": 0.0, "api_channels": set()}
    settings.update(options)
    return poll_shipments(db=hub.db, book=hub.purchasing.book,
                          folders=folder_transports(hub.env), alerts=alerts or RecordedAlerts(),
                          now=utcnow, **settings)


def drop(sftp: SftpServer, fixture: str, name: str | None = None) -> bytes:
    data = (NOTICES / fixture).read_bytes()
    (sftp.root / FOLDER / (name or fixture)).write_bytes(data)
    return data


def shipped(app: Flask) -> dict[str, int]:
    with hub_of(app).db.read_session() as s:
        return {str(line.sku): line.shipped_quantity
                for line in s.execute(select(OrderLine)).scalars()}


def order_status(app: Flask) -> str:
    with hub_of(app).db.read_session() as s:
        return str(s.execute(select(Order.status)).scalar_one())


def shipments(app: Flask) -> list[Shipment]:
    with hub_of(app).db.read_session() as s:
        return list(s.execute(select(Shipment).order_by(Shipment.created_at)).scalars())


def files(sftp: SftpServer) -> list[str]:
    folder = sftp.root / FOLDER
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_partial_then_complete(app: Flask, sftp: SftpServer, sent: None) -> None:
    drop(sftp, "csv_partial.csv")
    run = poll(app)
    assert (run.files, run.applied, run.shipments, run.quarantined) == (1, 1, 1, 0)
    assert shipped(app) == {"AG-BED-CED-L": 1, "GS-SOIL-40": 0, "AG-TRWL": 0}
    assert order_status(app) == "partially_shipped"
    [first] = shipments(app)
    assert (first.carrier, first.tracking_number) == ("DHL Paket", "00340434161094042557")
    assert first.lines == [{"order_line_id": first.lines[0]["order_line_id"],
                            "external_id": first.lines[0]["external_id"], "line_number": 1,
                            "sku": "AG-BED-CED-L", "quantity": 1}]
    assert first.push_status == "not_configured"  # no Shopify API token in this test
    assert files(sftp) == ["processed/csv_partial.csv"]

    # A cXML portion without items: "the whole (rest of the) order shipped". The example file
    # also has a portion for another order of ours (1043), which does not exist here.
    whole = (NOTICES / "cxml_ship_notice_whole_order.xml").read_text()
    start = whole.index("      <ShipNoticePortion>", whole.index("shopify-1042-agriest"))
    end = whole.index("</ShipNoticePortion>", start + 30) + len("</ShipNoticePortion>\n")
    (sftp.root / FOLDER / "asn-whole.xml").write_text(whole[:start] + whole[end:])
    assert poll(app).applied == 1
    assert shipped(app) == {"AG-BED-CED-L": 2, "GS-SOIL-40": 0, "AG-TRWL": 1}
    # greensoil's line has not shipped, so the order is not complete yet.
    assert order_status(app) == "partially_shipped"


def test_the_same_file_again_changes_nothing(app: Flask, sftp: SftpServer, sent: None) -> None:
    drop(sftp, "csv_partial.csv")
    poll(app)
    drop(sftp, "csv_partial.csv")
    second = poll(app)
    assert second.shipments == 0 and len(shipments(app)) == 1
    assert shipped(app)["AG-BED-CED-L"] == 1
    assert files(sftp) == ["processed/csv_partial.1.csv", "processed/csv_partial.csv"]
    with hub_of(app).db.read_session() as s:
        assert len(list(s.execute(select(InboundFile)).scalars())) == 1


def test_a_shipment_resent_under_another_name_is_not_counted_twice(
        app: Flask, sftp: SftpServer, sent: None) -> None:
    drop(sftp, "cxml_ship_notice.xml", "asn-1.xml")
    poll(app)
    before = shipped(app)
    data = (NOTICES / "cxml_ship_notice.xml").read_bytes().replace(b"payloadID=\"",
                                                                  b"payloadID=\"resent-")
    (sftp.root / FOLDER / "asn-1-again.xml").write_bytes(data)
    poll(app)
    assert shipped(app) == before


def test_a_malformed_file_goes_to_error_with_its_reason(
        app: Flask, sftp: SftpServer, sent: None) -> None:
    data = drop(sftp, "csv_wrong_columns.csv")
    alerts = RecordedAlerts()
    run = poll(app, alerts)
    assert run.quarantined == 1 and run.shipments == 0
    assert shipped(app)["AG-BED-CED-L"] == 0
    assert files(sftp) == ["error/csv_wrong_columns.csv", "error/csv_wrong_columns.csv.reason.txt"]
    reason = (sftp.root / FOLDER / "error" / "csv_wrong_columns.csv.reason.txt").read_text()
    assert "po_number" in reason
    [alert] = alerts.alerts
    assert alert["kind"] == "shipment_quarantined" and "csv_wrong_columns.csv" in alert["subject"]
    with hub_of(app).db.read_session() as s:
        kept = s.execute(select(InboundFile)).scalar_one()
    assert (kept.status, kept.content) == ("quarantined", data)


def test_an_unknown_sku_is_quarantined_and_nothing_applied(
        app: Flask, sftp: SftpServer, sent: None) -> None:
    (sftp.root / FOLDER / "asn.csv").write_text(
        "po_number,sku,quantity\nshopify-1042-agriest,AG-BED-CED-L,1\n"
        "shopify-1042-agriest,AG-NOT-OURS,1\n")
    alerts = RecordedAlerts()
    assert poll(app, alerts).quarantined == 1
    assert shipped(app)["AG-BED-CED-L"] == 0
    assert "AG-NOT-OURS is not on the purchase order" in alerts.alerts[0]["body"]


def test_more_than_ordered_is_applied_up_to_the_order_and_reported(
        app: Flask, sftp: SftpServer, sent: None) -> None:
    (sftp.root / FOLDER / "asn.csv").write_text(
        "po_number,sku,quantity,tracking_number\nshopify-1042-agriest,AG-TRWL,3,1Z999\n")
    alerts = RecordedAlerts()
    poll(app, alerts)
    assert shipped(app)["AG-TRWL"] == 1
    [alert] = alerts.alerts
    assert alert["kind"] == "shipment_excess" and "2 more than ordered" in alert["body"]


def test_an_unknown_purchase_order_is_quarantined(app: Flask, sftp: SftpServer,
                                                  sent: None) -> None:
    drop(sftp, "csv_unicode_carriers.csv")   # notices for orders 1044-1046, not ours
    alerts = RecordedAlerts()
    assert poll(app, alerts).quarantined == 1
    assert "no purchase order shopify-1044-agriest" in alerts.alerts[0]["body"]


def test_files_still_being_written_or_temporary_wait(app: Flask, sftp: SftpServer,
                                                     sent: None) -> None:
    drop(sftp, "csv_partial.csv", "asn.csv")
    drop(sftp, "csv_partial.csv", "other.csv.part")

    def supplier_still_writing(_seconds: float) -> None:
        with (sftp.root / FOLDER / "asn.csv").open("ab") as fh:
            fh.write(b"shopify-1042-agriest,AG-TRWL,1,00340434161094042557,DHL Paket\n")

    run = poll(app, settle_seconds=1.0, sleep=supplier_still_writing)
    assert run.files == 0 and run.skipped == 2
    assert files(sftp) == ["asn.csv", "other.csv.part"]
    later = poll(app)
    assert later.applied == 1
    assert shipped(app) == {"AG-BED-CED-L": 1, "GS-SOIL-40": 0, "AG-TRWL": 1}


def test_cli_exit_codes(app: Flask, sftp: SftpServer, sent: None) -> None:
    runner = app.test_cli_runner()
    drop(sftp, "csv_partial.csv")
    ok = runner.invoke(args=["shipments", "poll"])
    assert ok.exit_code == 0, ok.output
    assert "1 applied (1 shipment(s))" in ok.output
    drop(sftp, "csv_wrong_columns.csv")
    bad = runner.invoke(args=["shipments", "poll"])
    assert bad.exit_code == 1 and "1 quarantined" in bad.output
    unknown = runner.invoke(args=["shipments", "poll", "--supplier", "nobody"])
    assert unknown.exit_code == 2


# ---------------------------------------------------------------- fulfillment back to Shopify

@pytest.fixture
def shopify() -> Iterator[Any]:
    from tests.integration.test_shopify_api import FakeAdminGraphQL

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeAdminGraphQL(mock)


def admin(clock: Any = None) -> Any:
    from app.channels.shopify_api import ShopifyAdmin
    from tests.integration.test_shopify_api import SHOP, TOKEN, FakeClock

    clock = clock or FakeClock()   # the client's own waits take no real time
    return ShopifyAdmin(SHOP, TOKEN, api_version="2026-10", clock=clock, sleep=clock.sleep)


def jobs(app: Flask) -> list[OutboxJob]:
    with hub_of(app).db.read_session() as s:
        return list(s.execute(select(OutboxJob).where(
            OutboxJob.kind == "push_fulfillment")).scalars())


def test_a_partial_shipment_becomes_one_fulfillment_with_tracking(
        app: Flask, sftp: SftpServer, sent: None, shopify: Any) -> None:
    from tests.integration.test_shopify_api import (
        BED,
        OPEN_AT_WAREHOUSE,
        created,
        fulfillment_orders,
        fulfillments,
    )

    drop(sftp, "csv_partial.csv")
    poll(app, api_channels={"shopify"})
    [job] = jobs(app)
    assert (job.lane, job.status) == ("channel:shopify", "pending")
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))
    shopify.reply("OrderHubFulfillmentCreate", created(255858046))

    stats = dispatcher(app, apis={"shopify": admin()}).run(once=True)

    assert stats.pushed == 1
    [call] = shopify.calls("OrderHubFulfillmentCreate")
    assert call["fulfillment"]["lineItemsByFulfillmentOrder"] == [{
        "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1046000778",
        "fulfillmentOrderLineItems": [
            {"id": "gid://shopify/FulfillmentOrderLineItem/1058737482", "quantity": 1}]}]
    assert call["fulfillment"]["trackingInfo"]["number"] == "00340434161094042557"
    assert call["fulfillment"]["trackingInfo"]["company"] == "DHL Paket"
    [shipment] = shipments(app)
    assert shipment.push_status == "pushed"
    assert shipment.channel_reference == "gid://shopify/Fulfillment/255858046"
    assert shipment.lines[0]["external_id"] == BED
    assert jobs(app)[0].status == "done"
    # The same file again: no new shipment, no second push.
    drop(sftp, "csv_partial.csv")
    poll(app, api_channels={"shopify"})
    assert len(jobs(app)) == 1


def test_shopify_down_is_retried_then_dead_with_an_alert(
        app: Flask, sftp: SftpServer, sent: None, shopify: Any) -> None:
    drop(sftp, "csv_partial.csv")
    poll(app, api_channels={"shopify"})
    down = {"errors": "Internal Server Error"}
    shopify.reply("OrderHubOrderFulfillments", down, status=503, times=50)
    alerts = RecordedAlerts()

    first = dispatcher(app, alerts=alerts, apis={"shopify": admin()}).run(once=True)

    assert first.retried == 1 and alerts.alerts == []
    [job] = jobs(app)
    assert job.status == "pending" and "503" in (job.last_error or "")
    a_day_later = dispatcher(app, alerts=alerts, apis={"shopify": admin()},
                             clock=lambda: utcnow() + timedelta(hours=25)).run(once=True)
    assert a_day_later.dead == 1
    assert jobs(app)[0].status == "dead"
    assert shipments(app)[0].push_status == "dead"
    [alert] = alerts.alerts
    assert alert["kind"] == "fulfillment_dead" and "1042" in alert["subject"]
    assert "00340434161094042557" in alert["body"]


def test_a_throttled_shopify_is_waited_for_and_the_push_goes_through(
        app: Flask, sftp: SftpServer, sent: None, shopify: Any) -> None:
    from tests.integration.test_shopify_api import (
        OPEN_AT_WAREHOUSE,
        created,
        fulfillment_orders,
        fulfillments,
        throttled,
    )

    drop(sftp, "csv_partial.csv")
    poll(app, api_channels={"shopify"})
    shopify.reply("OrderHubOrderFulfillments", throttled(requested=60, available=10))
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))
    shopify.reply("OrderHubFulfillmentCreate", created(255858047))
    from tests.integration.test_shopify_api import FakeClock

    clock = FakeClock()

    stats = dispatcher(app, apis={"shopify": admin(clock)}).run(once=True)

    assert stats.pushed == 1 and stats.retried == 0
    assert len(shopify.calls("OrderHubOrderFulfillments")) == 2
    assert clock.sleeps and clock.sleeps[0] >= 0.5, "the client waited for the bucket"
    assert shipments(app)[0].push_status == "pushed"


def test_a_supplier_with_its_own_column_names(app: Flask, sftp: SftpServer, sent: None,
                                              tmp_path: Path, config: dict[str, str]) -> None:
    from app import create_app

    suppliers = Path(config["SUPPLIERS_FILE"])
    suppliers.write_text(suppliers.read_text().replace(
        'shipments_path = ', 'shipment_columns = { po_number = "Bestellung", sku = "Artikel", '
        'quantity = "Menge", tracking_number = "Sendungsnummer" }\nshipments_path = '))
    german = create_app(config)
    (sftp.root / FOLDER / "lieferung.csv").write_text(
        "Bestellung;Artikel;Menge;Sendungsnummer\nshopify-1042-agriest;AG-TRWL;1;00340434\n")
    try:
        assert poll(german).applied == 1
    finally:
        hub_of(german).db.dispose()
    assert shipped(app)["AG-TRWL"] == 1
    assert shipments(app)[0].tracking_number == "00340434"


def test_the_same_bytes_under_another_name_are_not_applied_twice(
        app: Flask, sftp: SftpServer, sent: None) -> None:
    drop(sftp, "csv_partial.csv", "ship-0001.csv")
    poll(app)
    drop(sftp, "csv_partial.csv", "ship-0001-resend.csv")
    again = poll(app)
    assert again.shipments == 0 and shipped(app)["AG-BED-CED-L"] == 1
    assert files(sftp) == ["processed/ship-0001-resend.csv", "processed/ship-0001.csv"]


def test_odd_files_do_not_stop_the_poll(app: Flask, sftp: SftpServer, sent: None) -> None:
    (sftp.root / FOLDER / "C:\\export\\ship.csv").write_text("po_number,sku,quantity\n")
    (sftp.root / FOLDER / "huge.csv").write_text(
        "po_number,sku,quantity\nshopify-1042-agriest,AG-TRWL," + "9" * 5000 + "\n")
    drop(sftp, "csv_partial.csv")
    alerts = RecordedAlerts()
    run = poll(app, alerts)
    assert run.applied == 1 and run.quarantined == 1
    assert shipped(app)["AG-BED-CED-L"] == 1 and shipped(app)["AG-TRWL"] == 0
    assert "C:\\export\\ship.csv" in files(sftp)   # left alone
    assert "error/huge.csv" in files(sftp)


def test_an_unexpected_error_in_one_push_does_not_hold_up_the_others(
        app: Flask, sftp: SftpServer, sent: None) -> None:
    from app.channels.base import PushResult, ShipmentPush

    class Fussy:
        """A channel API that breaks on the first shipment it is given (a bug, say)."""

        def __init__(self) -> None:
            self.pushed: list[tuple[str, int]] = []
            self.broke = False

        def push_fulfillment(self, order_external_id: str, shipment: ShipmentPush) -> PushResult:
            if not self.broke and shipment.tracking_number == "00340434161094042557":
                self.broke = True
                raise KeyError("fulfillmentOrders")
            self.pushed.extend(shipment.lines)
            return PushResult(reference="gid://shopify/Fulfillment/1")

        def orders_updated_since(self, since: Any) -> Any:
            return iter(())

    drop(sftp, "csv_partial.csv")
    (sftp.root / FOLDER / "asn-trowel.csv").write_text(
        "po_number,sku,quantity,tracking_number\nshopify-1042-agriest,AG-TRWL,1,1Z999\n")
    poll(app, api_channels={"shopify"})
    api = Fussy()

    stats = dispatcher(app, apis={"shopify": api}).run(once=True)

    assert stats.pushed == 1 and stats.retried == 1
    by_status = sorted(j.status for j in jobs(app))
    assert by_status == ["done", "pending"]
    failed = next(j for j in jobs(app) if j.status == "pending")
    assert "unexpected KeyError" in (failed.last_error or "")
