"""What the demo's pretend shop and suppliers write is what OrderHub reads: the shop's orders
parse as Shopify orders, the suppliers read OrderHub's purchase orders, and their shipment
notices parse with OrderHub's own notice readers."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from app.channels.shopify import parse_order
from deploy.demo_catalog import PRODUCTS, SUPPLIERS
from deploy.demo_shop import make_order
from deploy.demo_supplier import (
    PoLine,
    PurchaseOrder,
    csv_notice,
    native_notice,
    read_purchase_order,
    split_shipment,
)
from shipment.notices import parse_notice

DOCUMENTS = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
PARCEL = ("DHL Paket", "00340434161094042557",
          "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode=1")
SHIPPED_AT = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


def test_demo_orders_are_shopify_orders_of_the_demo_catalogue() -> None:
    rng = random.Random(7)
    skus = {p.sku for p in PRODUCTS}
    for number in range(1001, 1041):
        order = parse_order(make_order(number, rng, SHIPPED_AT))
        assert order.number == f"#{number}" and order.external_id == str(5_900_000_000_000
                                                                        + number)
        assert {line.sku for line in order.lines} <= skus and 1 <= len(order.lines) <= 3
        items = sum((line.price * line.quantity for line in order.lines), Decimal(0))
        assert order.total_price == items + (order.total_tax or 0) + (order.total_shipping or 0)
    prefixes = {s.sku_prefix for s in SUPPLIERS}
    assert all(any(p.sku.startswith(prefix) for prefix in prefixes) for p in PRODUCTS)


def test_reads_our_purchase_orders_native_and_ubl() -> None:
    native = read_purchase_order((DOCUMENTS / "golden_order.orderhub.xml").read_bytes())
    assert (native.po_number, native.version, native.action) == ("shopify-1042-agriest", 1,
                                                                 "new")
    assert native.lines[0] == PoLine(1, "TRW-01", 2) and len(native.lines) == 3
    ubl = read_purchase_order((DOCUMENTS / "golden_order.ubl.xml").read_bytes())
    assert ubl.po_number == "1042-AGRIEST" and ubl.action == "new"
    assert ubl.lines[0] == PoLine(1, "GG-SEED-TOM", 3)
    change = read_purchase_order((DOCUMENTS / "golden_order_change.ubl.xml").read_bytes())
    assert change.action != "new"


@pytest.mark.parametrize("render, name", [(native_notice, "SHIP_x_1.xml"),
                                          (csv_notice, "SHIP_x_1.csv")])
def test_notices_parse_with_orderhubs_readers(render, name) -> None:
    po = PurchaseOrder("demo-1001-greenleaf", 1, "new",
                       (PoLine(1, "GL-TRWL-01", 2), PoLine(2, "GL-GLV-M", 1)))
    data = render(po, po.lines, "GREENLEAF-SH-1", PARCEL, SHIPPED_AT)
    [notice] = parse_notice(data, name=name)
    assert notice.po_number == "demo-1001-greenleaf"
    assert notice.shipment_id == "GREENLEAF-SH-1" and notice.shipped_at == SHIPPED_AT
    assert [(p.carrier, p.tracking_number) for p in notice.packages] == [PARCEL[:2]]
    assert [(line.line_number, line.sku, line.quantity) for line in notice.lines] == [
        (1, "GL-TRWL-01", 2), (2, "GL-GLV-M", 1)]


def test_a_split_shipment_ships_every_unit_once() -> None:
    lines = (PoLine(1, "A", 3), PoLine(2, "B", 2))
    parts = [split_shipment(lines, random.Random(seed)) for seed in range(40)]
    assert any(len(p) == 2 for p in parts) and any(len(p) == 1 for p in parts)
    for part in parts:
        shipped: dict[int, int] = {}
        for parcel in part:
            for line in parcel:
                assert line.quantity > 0
                shipped[line.number] = shipped.get(line.number, 0) + line.quantity
        assert shipped == {1: 3, 2: 2}
    assert split_shipment((PoLine(1, "A", 1),), random.Random(0)) == [(PoLine(1, "A", 1),)]
