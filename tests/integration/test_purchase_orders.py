"""From a Shopify webhook to purchase orders, one per supplier, kept in step with the order
through edits and cancellations, before and after sending. Real database, real renderers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select, update

from app.models import Order, OrderLine, PoStatus, PurchaseOrder
from tests.conftest import (
    auth,
    base_config,
    encode,
    hub_of,
    post_delivery,
    shopify_headers,
    shopify_payload,
)

SUPPLIERS = """
[suppliers.agriest]
name = "Agriest"
transport = "file:///srv/orderhub/agriest"
format = "ubl"
sku_prefixes = ["AG-"]

[suppliers.greensoil]
name = "GreenSoil Co"
transport = "file:///srv/orderhub/greensoil"
format = "cxml"
vendors = ["GreenSoil Co"]

[suppliers.tools]
name = "Toolmakers Ltd"
transport = "file:///srv/orderhub/tools"
format = "orderhub"
sku_prefixes = ["TL-"]
"""


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "suppliers.toml"
    path.write_text(SUPPLIERS)
    return {**base_config(database_url), "SUPPLIERS_FILE": str(path),
            "SELLER_NAME": "Garden Goods", "SELLER_ID": "garden-goods"}


def three_supplier_order() -> dict[str, Any]:
    payload = shopify_payload()
    trowel = payload["line_items"][2]
    trowel.update(sku="TL-TRWL", vendor="Toolmakers")
    return payload


def deliver(client: FlaskClient, payload: dict[str, Any], topic: str = "orders/create",
            webhook_id: str | None = None) -> str:
    body = encode(payload)
    return post_delivery(client, body,
                         shopify_headers(body, topic=topic, webhook_id=webhook_id))


def later(payload: dict[str, Any], minutes: int, **changes: Any) -> dict[str, Any]:
    newer = copy.deepcopy(payload)
    newer["updated_at"] = f"2026-11-20T{10 + minutes // 60:02d}:{minutes % 60:02d}:00-05:00"
    newer.update(changes)
    return newer


def pos(app: Flask) -> list[PurchaseOrder]:
    with hub_of(app).db.read_session() as s:
        return list(s.execute(select(PurchaseOrder).order_by(
            PurchaseOrder.supplier, PurchaseOrder.version)).scalars())


def order(app: Flask) -> Order:
    with hub_of(app).db.read_session() as s:
        found = s.execute(select(Order)).scalar_one()
        found.lines  # noqa: B018
        return found


def mark_sent(app: Flask, supplier: str) -> None:
    """What the dispatcher does once the file is on the supplier's server."""
    with hub_of(app).db.session() as s:
        s.execute(update(PurchaseOrder).where(PurchaseOrder.supplier == supplier,
                                              PurchaseOrder.status == PoStatus.PENDING)
                  .values(status=PoStatus.SENT))
        s.commit()


def xml(po: PurchaseOrder) -> Any:
    assert po.document is not None
    return etree.fromstring(po.document)


def test_three_suppliers_three_purchase_orders(app: Flask, client: FlaskClient) -> None:
    assert deliver(client, three_supplier_order(), webhook_id="d-1") == "processed"
    assert deliver(client, three_supplier_order(), webhook_id="d-1") == "duplicate"

    found = pos(app)
    assert [(p.supplier, p.format, p.version, p.action, p.status) for p in found] == [
        ("agriest", "ubl", 1, "new", "pending"),
        ("greensoil", "cxml", 1, "new", "pending"),
        ("tools", "orderhub", 1, "new", "pending"),
    ]
    assert order(app).status == "routed"
    agriest, greensoil, tools = found
    assert agriest.file_name == "PO_agriest_shopify-1042_v1.xml"
    assert agriest.po_number == "shopify-1042-agriest"
    assert [line["sku"] for line in agriest.lines] == ["AG-BED-CED-L"]
    assert etree.QName(xml(agriest)).localname == "Order"
    assert xml(greensoil).tag == "cXML"
    assert xml(greensoil).find(".//ItemOut").get("quantity") == "1"
    assert etree.QName(xml(tools)).localname == "PurchaseOrder"
    assert all(p.sha256 and len(p.sha256) == 64 for p in found)


def test_unmapped_line_holds_only_itself_until_rerouted(app: Flask, client: FlaskClient,
                                                        tmp_path: Path) -> None:
    payload = three_supplier_order()
    payload["line_items"][2].update(sku="ZZ-MYSTERY", vendor="Nobody")
    deliver(client, payload)

    assert [p.supplier for p in pos(app)] == ["agriest", "greensoil"]
    held = order(app)
    assert held.status == "needs_attention"
    mystery = held.lines[2]
    assert mystery.routing == "needs_mapping"
    assert mystery.routing_reason is not None and "ZZ-MYSTERY" in mystery.routing_reason

    csv_file = tmp_path / "skus.csv"
    csv_file.write_text("sku,supplier,supplier_sku,cost,priority\nZZ-MYSTERY,tools,T-777,3.10,1\n")
    runner = app.test_cli_runner()
    imported = runner.invoke(args=["suppliers", "import-skus", str(csv_file)])
    assert imported.exit_code == 0, imported.output
    rerouted = runner.invoke(args=["orders", "reroute", str(held.id)])
    assert rerouted.exit_code == 0, rerouted.output

    assert [p.supplier for p in pos(app)] == ["agriest", "greensoil", "tools"]
    tools = pos(app)[2]
    assert tools.lines[0]["supplier_sku"] == "T-777"
    assert tools.lines[0]["unit_price"] == "3.10"
    assert order(app).status == "routed"


def test_reroute_through_the_api(app: Flask, client: FlaskClient) -> None:
    payload = three_supplier_order()
    payload["line_items"][2].update(sku="ZZ-1", vendor="Nobody")
    deliver(client, payload)
    order_id = order(app).id
    still = client.post(f"/api/orders/{order_id}/reroute", headers=auth()).json
    assert still["unrouted_lines"] == 1 and still["order_status"] == "needs_attention"
    assert client.post("/api/orders/not-an-id/reroute", headers=auth()).status_code == 404


def test_edit_before_send_replaces_the_document(app: Flask, client: FlaskClient) -> None:
    created = three_supplier_order()
    deliver(client, created)
    before = {p.supplier: p for p in pos(app)}
    edited = later(created, 30)
    edited["line_items"][0]["current_quantity"] = 5
    deliver(client, edited, topic="orders/updated")

    after = {p.supplier: p for p in pos(app)}
    assert len(pos(app)) == 3
    assert after["agriest"].id == before["agriest"].id  # replaced in place
    assert (after["agriest"].version, after["agriest"].action) == (1, "new")
    assert after["agriest"].lines[0]["quantity"] == 5
    assert after["agriest"].sha256 != before["agriest"].sha256
    assert after["greensoil"].sha256 == before["greensoil"].sha256  # untouched


def test_edit_after_send_makes_a_change_version(app: Flask, client: FlaskClient) -> None:
    created = three_supplier_order()
    created["line_items"][2].update(sku="AG-TRWL", vendor="Agriest")  # two lines to agriest
    deliver(client, created)
    mark_sent(app, "agriest")
    edited = later(created, 30)
    edited["line_items"][0]["current_quantity"] = 1
    del edited["line_items"][2]
    deliver(client, edited, topic="orders/updated")

    agriest = [p for p in pos(app) if p.supplier == "agriest"]
    assert [(p.version, p.action, p.status) for p in agriest] == [
        (1, "new", "sent"), (2, "change", "pending")]
    v1, v2 = agriest
    assert {(d["sku"], d["quantity"]) for d in v2.lines} == {("AG-BED-CED-L", 1), ("AG-TRWL", 0)}
    assert v2.file_name.endswith("_v2.xml")
    root = xml(v2)
    assert etree.QName(root).localname == "OrderChange"
    ubl = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
           "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"}
    assert root.findtext("cbc:SequenceNumberID", namespaces=ubl) == "2"
    assert root.findtext("cac:OrderReference/cbc:ID", namespaces=ubl) == v1.po_number

    # The same change delivered again, or an unrelated update, makes no third version.
    deliver(client, later(edited, 31), topic="orders/updated")
    assert len([p for p in pos(app) if p.supplier == "agriest"]) == 2


def test_cancel_before_send_withdraws(app: Flask, client: FlaskClient) -> None:
    created = three_supplier_order()
    deliver(client, created)
    deliver(client, later(created, 45, cancelled_at="2026-11-20T10:45:00-05:00",
                          cancel_reason="customer"), topic="orders/cancelled")
    assert {p.status for p in pos(app)} == {"withdrawn"}
    assert len(pos(app)) == 3
    assert order(app).status == "cancelled"


def test_cancel_after_send_makes_a_cancel_document(app: Flask, client: FlaskClient) -> None:
    created = three_supplier_order()
    deliver(client, created)
    mark_sent(app, "greensoil")
    deliver(client, later(created, 45, cancelled_at="2026-11-20T10:45:00-05:00",
                          cancel_reason="customer"), topic="orders/cancelled")

    found = {(p.supplier, p.version): p for p in pos(app)}
    assert found[("agriest", 1)].status == "withdrawn"
    assert found[("tools", 1)].status == "withdrawn"
    cancel = found[("greensoil", 2)]
    assert (cancel.action, cancel.status) == ("cancel", "pending")
    request = xml(cancel).find(".//OrderRequestHeader")
    assert request.get("type") == "delete"
    assert request.get("orderVersion") == "2"


def test_unpaid_orders_wait_for_payment(app: Flask, client: FlaskClient) -> None:
    pending = three_supplier_order()
    pending["financial_status"] = "pending"
    deliver(client, pending)
    assert pos(app) == []
    assert order(app).status == "awaiting_payment"
    deliver(client, later(pending, 5, financial_status="paid"), topic="orders/paid")
    assert len(pos(app)) == 3
    assert order(app).status == "routed"


def test_test_orders_go_nowhere_unless_accepted(app: Flask, client: FlaskClient) -> None:
    payload = three_supplier_order()
    payload["test"] = True
    deliver(client, payload)
    assert pos(app) == []
    assert order(app).status == "test"


def test_gift_cards_and_digital_lines_are_left_out(app: Flask, client: FlaskClient) -> None:
    payload = three_supplier_order()
    payload["line_items"][1].update(gift_card=True, requires_shipping=False, sku="GIFT-50")
    deliver(client, payload)
    assert [p.supplier for p in pos(app)] == ["agriest", "tools"]
    assert order(app).lines[1].routing == "not_shipped"
    assert order(app).status == "routed"


def test_purchase_order_api_and_cli(app: Flask, client: FlaskClient) -> None:
    deliver(client, three_supplier_order())
    listed = client.get("/api/purchase-orders?supplier=greensoil", headers=auth()).json
    (po,) = listed["purchase_orders"]
    assert po["status"] == "pending" and po["format"] == "cxml"
    assert client.get("/api/purchase-orders?status=sent", headers=auth()).json == {
        "purchase_orders": []}

    one = client.get(f"/api/purchase-orders/{po['id']}", headers=auth()).json
    assert one["lines"][0]["sku"] == "GS-SOIL-40"
    document = client.get(f"/api/purchase-orders/{po['id']}/document", headers=auth())
    assert document.mimetype == "application/xml"
    assert document.data.startswith(b"<?xml")
    assert client.get("/api/purchase-orders/nope", headers=auth()).status_code == 404
    assert client.get(f"/api/purchase-orders/{po['id']}").status_code == 401

    shown = app.test_cli_runner().invoke(args=["po", "show", po["id"]])
    assert shown.exit_code == 0
    assert "shopify-1042-greensoil v1 (new) to greensoil: pending" in shown.output
    assert "<cXML" in shown.output
    missing = app.test_cli_runner().invoke(args=["po", "show", "no-such-po"])
    assert missing.exit_code == 2


def test_bad_sku_csv_imports_nothing(app: Flask, tmp_path: Path) -> None:
    csv_file = tmp_path / "skus.csv"
    csv_file.write_text(
        "sku,supplier,supplier_sku,cost,priority\n"
        "AG-1,agriest,A1,2.50,1\n"
        ",agriest,A2,1,1\n"
        "AG-3,nobody,A3,1,1\n"
        "AG-4,agriest,A4,cheap,x\n"
    )
    result = app.test_cli_runner().invoke(args=["suppliers", "import-skus", str(csv_file)])
    assert result.exit_code == 1
    assert "line 3: sku is empty" in result.output
    assert "line 4: supplier 'nobody' is not in suppliers.toml" in result.output
    assert "line 5: cost 'cheap'" in result.output and "priority 'x'" in result.output
    assert "nothing imported" in result.output
    from app.models import SkuMapEntry

    with hub_of(app).db.read_session() as s:
        assert s.execute(select(SkuMapEntry)).first() is None
    no_header = tmp_path / "no_header.csv"
    no_header.write_text("AG-1,agriest\n")
    result = app.test_cli_runner().invoke(args=["suppliers", "import-skus", str(no_header)])
    assert result.exit_code == 1 and "line 1: header" in result.output


def test_lines_keep_their_routing_in_the_api(app: Flask, client: FlaskClient) -> None:
    deliver(client, three_supplier_order())
    order_id = order(app).id
    body = client.get(f"/api/orders/{order_id}", headers=auth()).json
    assert [(line["supplier"], line["routing"]) for line in body["lines"]] == [
        ("agriest", "routed"), ("greensoil", "routed"), ("tools", "routed")]
    with hub_of(app).db.read_session() as s:
        assert s.execute(select(OrderLine.supplier).where(OrderLine.sku == "GS-SOIL-40")
                         ).scalar_one() == "greensoil"


def test_lines_back_after_a_sent_cancel_start_a_new_purchase_order(
    app: Flask, client: FlaskClient
) -> None:
    created = three_supplier_order()
    deliver(client, created)
    mark_sent(app, "tools")
    without_trowel = later(created, 10)
    del without_trowel["line_items"][2]
    deliver(client, without_trowel, topic="orders/updated")
    mark_sent(app, "tools")  # the cancel document reached the supplier
    back = later(created, 20)
    back["line_items"][2]["current_quantity"] = 3
    deliver(client, back, topic="orders/updated")

    tools = [p for p in pos(app) if p.supplier == "tools"]
    assert [(p.version, p.action, p.status, p.po_number) for p in tools] == [
        (1, "new", "sent", "shopify-1042-tools"),
        (2, "cancel", "sent", "shopify-1042-tools"),
        (3, "new", "pending", "shopify-1042-2-tools"),
    ]
    assert tools[2].lines[0]["quantity"] == 3
    assert order(app).status == "routed"


def test_a_document_that_failed_validation_is_rebuilt_by_reroute(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.documents import ubl
    from app.documents.model import DocumentInvalid

    real = ubl.validate_ubl

    def broken(xml: bytes) -> None:
        raise DocumentInvalid("ubl", "line 3: element cac:OrderLine missing")

    monkeypatch.setattr(ubl, "validate_ubl", broken)
    import app.documents as documents

    documents._formats.cache_clear()
    deliver(client, three_supplier_order())
    agriest = [p for p in pos(app) if p.supplier == "agriest"][0]
    assert (agriest.status, agriest.document) == ("failed", None)
    assert agriest.error is not None and "cac:OrderLine" in agriest.error
    assert order(app).status == "needs_attention"
    runner = app.test_cli_runner()
    still = runner.invoke(args=["orders", "reroute", str(order(app).id)])
    assert still.exit_code == 1 and "document failed for agriest" in still.output

    monkeypatch.setattr(ubl, "validate_ubl", real)  # the fix is deployed
    documents._formats.cache_clear()
    fixed = runner.invoke(args=["orders", "reroute", str(order(app).id)])
    assert fixed.exit_code == 0, fixed.output
    agriest = [p for p in pos(app) if p.supplier == "agriest"][0]
    assert (agriest.version, agriest.status) == (1, "pending")
    assert agriest.document is not None and agriest.error is None
    assert order(app).status == "routed"


def test_an_unmapped_line_removed_by_an_edit_no_longer_holds_the_order(
    app: Flask, client: FlaskClient
) -> None:
    payload = three_supplier_order()
    payload["line_items"][2].update(sku="ZZ-MYSTERY", vendor="Nobody")
    deliver(client, payload)
    assert order(app).status == "needs_attention"
    edited = later(payload, 5)
    edited["line_items"][2]["current_quantity"] = 0
    deliver(client, edited, topic="orders/updated")
    assert order(app).status == "routed"


def test_an_edit_undone_before_sending_withdraws_the_change(app: Flask,
                                                            client: FlaskClient) -> None:
    created = three_supplier_order()
    deliver(client, created)
    mark_sent(app, "agriest")
    more = later(created, 10)
    more["line_items"][0]["current_quantity"] = 3
    deliver(client, more, topic="orders/updated")
    back = later(created, 20)  # quantity 2 again, as the supplier already has it
    deliver(client, back, topic="orders/updated")

    agriest = [p for p in pos(app) if p.supplier == "agriest"]
    assert [(p.version, p.action, p.status) for p in agriest] == [
        (1, "new", "sent"), (2, "change", "withdrawn")]
    again = later(created, 30)
    again["line_items"][0]["current_quantity"] = 4
    deliver(client, again, topic="orders/updated")
    agriest = [p for p in pos(app) if p.supplier == "agriest"]
    assert [(p.version, p.action, p.status) for p in agriest][-1] == (3, "change", "pending")
    assert agriest[-1].lines[0]["quantity"] == 4
