"""Suppliers' acknowledgements, read by the dispatcher from the supplier's SFTP `acks_path`:
applied once, kept, archived, and alerted when refused, unusable or overdue. A real asyncssh SFTP
server on 127.0.0.1, a real database (SQLite and PostgreSQL), the documented example files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.dispatch import Dispatcher, default_transports, folder_transports
from app.models import InboundFile, Order, PoStatus, PurchaseOrder
from app.outbox import RetryPolicy
from app.types import utcnow
from tests.conftest import (
    FIXTURES,
    auth,
    base_config,
    encode,
    hub_of,
    post_delivery,
    shopify_headers,
    shopify_payload,
)
from tests.integration.test_dispatch import RecordedAlerts
from tests.sftp_server import PASSWORD, USER, SftpServer, _serve

ACKS = FIXTURES / "acks"


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    for server in _serve(tmp_path):
        (server.root / "acks").mkdir()
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
acks_path = "/acks"
ack_timeout = "4h"

[suppliers.greensoil]
transport = "file://{tmp_path / 'greensoil'}"
vendors = ["GreenSoil Co"]
""")
    return {**base_config(database_url), "SUPPLIERS_FILE": str(suppliers),
            "AGRIEST_SFTP_PASSWORD": PASSWORD}


def dispatcher(app: Flask, alerts: RecordedAlerts, clock: Any = utcnow) -> Dispatcher:
    hub = hub_of(app)
    return Dispatcher(db=hub.db, purchasing=hub.purchasing, policy=RetryPolicy(),
                      transports=default_transports(hub.env), alerts=alerts, clock=clock,
                      folders=folder_transports(hub.env), poll_seconds=0.05,
                      ack_settle_seconds=0)


@pytest.fixture
def sent(app: Flask, client: FlaskClient) -> RecordedAlerts:
    """Order #1042 taken, and its purchase orders sent."""
    body = encode(shopify_payload())
    assert post_delivery(client, body, shopify_headers(body)) == "processed"
    alerts = RecordedAlerts()
    assert dispatcher(app, alerts).run(once=True).sent == 2
    return alerts


def agriest_po(app: Flask) -> PurchaseOrder:
    with hub_of(app).db.read_session() as s:
        return s.execute(select(PurchaseOrder).where(PurchaseOrder.supplier == "agriest")
                         ).scalar_one()


def inbound_files(app: Flask) -> list[InboundFile]:
    with hub_of(app).db.read_session() as s:
        return list(s.execute(select(InboundFile).order_by(InboundFile.received_at)).scalars())


def drop(sftp: SftpServer, fixture: str, name: str | None = None) -> bytes:
    data = (ACKS / fixture).read_bytes()
    (sftp.root / "acks" / (name or fixture)).write_bytes(data)
    return data


def names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_ubl_order_response_acknowledges_and_is_archived(
        app: Flask, client: FlaskClient, sftp: SftpServer, sent: RecordedAlerts) -> None:
    data = drop(sftp, "ubl_order_response_accepted.xml")

    dispatcher(app, sent).run(once=True)

    po = agriest_po(app)
    assert po.status == PoStatus.ACKNOWLEDGED and po.ack_status == "accepted"
    assert po.acknowledged_at is not None
    assert names(sftp.root / "acks") == ["processed/ubl_order_response_accepted.xml"]
    [kept] = inbound_files(app)
    assert (kept.name, kept.status, kept.content) == ("ubl_order_response_accepted.xml",
                                                      "applied", data)
    assert sent.alerts == []
    shown = client.get(f"/api/purchase-orders/{po.id}", headers=auth()).json
    assert shown["status"] == "acknowledged"
    assert shown["acknowledgement"]["status"] == "accepted"


def test_cxml_rejection_needs_attention_and_alerts(
        app: Flask, sftp: SftpServer, sent: RecordedAlerts) -> None:
    drop(sftp, "cxml_confirmation_reject.xml")

    dispatcher(app, sent).run(once=True)

    po = agriest_po(app)
    assert po.status == PoStatus.REJECTED and "Germany" in (po.ack_note or "")
    with hub_of(app).db.read_session() as s:
        assert s.execute(select(Order.status)).scalar_one() == "needs_attention"
    [alert] = sent.alerts
    assert alert["kind"] == "ack_rejected" and "shopify-1042-agriest" in alert["subject"]
    assert "Germany" in alert["body"]


def test_the_same_file_again_is_not_applied_twice(
        app: Flask, sftp: SftpServer, sent: RecordedAlerts) -> None:
    drop(sftp, "cxml_confirmation_accept.xml", "ack-1.xml")
    dispatcher(app, sent).run(once=True)
    # The supplier's tool puts the very same file back (or our move had failed).
    drop(sftp, "cxml_confirmation_accept.xml", "ack-1.xml")
    dispatcher(app, sent).run(once=True)

    assert len(inbound_files(app)) == 1
    assert names(sftp.root / "acks") == ["processed/ack-1.1.xml", "processed/ack-1.xml"]
    assert agriest_po(app).status == PoStatus.ACKNOWLEDGED


def test_an_ack_for_an_unknown_purchase_order_is_quarantined(
        app: Flask, sftp: SftpServer, sent: RecordedAlerts) -> None:
    text = (ACKS / "cxml_confirmation_accept.xml").read_text()
    (sftp.root / "acks" / "wrong.xml").write_text(
        text.replace("shopify-1042-agriest", "shopify-9999-agriest"))
    (sftp.root / "acks" / "garbage.xml").write_bytes(b"<not-an-ack/>")

    dispatcher(app, sent).run(once=True)

    kept = {f.name: f for f in inbound_files(app)}
    assert kept["wrong.xml"].status == "quarantined"
    assert "no purchase order shopify-9999-agriest" in (kept["wrong.xml"].error or "")
    assert kept["garbage.xml"].status == "quarantined"
    assert names(sftp.root / "acks") == ["error/garbage.xml", "error/wrong.xml"]
    assert {a["kind"] for a in sent.alerts} == {"ack_quarantined"}
    assert len(sent.alerts) == 2
    assert agriest_po(app).status == PoStatus.SENT


def test_unacknowledged_purchase_orders_are_alerted_once(
        app: Flask, sftp: SftpServer, sent: RecordedAlerts) -> None:
    dispatcher(app, sent).run(once=True)
    assert sent.alerts == []  # not overdue yet

    five_hours_on = lambda: utcnow() + timedelta(hours=5)  # noqa: E731
    dispatcher(app, sent, clock=five_hours_on).run(once=True)
    dispatcher(app, sent, clock=five_hours_on).run(once=True)

    [alert] = sent.alerts
    assert alert["kind"] == "ack_overdue" and "agriest" in alert["subject"]
    assert "shopify-1042-agriest v1" in alert["body"]


def test_unfinished_files_are_left_for_later(
        app: Flask, sftp: SftpServer, sent: RecordedAlerts) -> None:
    drop(sftp, "cxml_confirmation_accept.xml", "ack-2.xml.part")
    dispatcher(app, sent).run(once=True)
    assert inbound_files(app) == []
    assert names(sftp.root / "acks") == ["ack-2.xml.part"]
