"""The demo suppliers' side: they read the purchase orders OrderHub uploaded to their SFTP
folders (from their own disk, as a supplier's importer would) and, a little later, put a
shipment notice for each into their `shipments/` folder; now and then a stock feed. Run by
`deploy/demo.py`:

    python -m deploy.demo_supplier --demo-dir var/demo [--interval 5]

Greenleaf (purchase orders in OrderHub's own XML) answers with OrderHub's native XML shipment
notice; Terra (UBL 2.1 orders) with a CSV notice, both as in app/documents/FORMATS.md. About one
purchase order in four ships in two parcels some seconds apart (a partial shipment first).
Every file is written under a temporary name and renamed, as OrderHub does. Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET  # noqa: S405 (only OrderHub's own purchase orders)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # `python deploy/demo_supplier.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.demo_catalog import (  # noqa: E402
    STOCK_FEED,
    SUPPLIERS,
    DemoPaths,
    DemoSupplier,
    products_of,
    say,
)

PO_NS = "urn:orderhub:purchase-order:1"
NOTICE_NS = "urn:orderhub:shipment-notice:1"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
UBL_ORDER = "{urn:oasis:names:specification:ubl:schema:xsd:Order-2}Order"
CARRIERS = (
    ("DHL Paket", "00340434{:012d}",
     "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode={}"),
    ("UPS", "1Z999AA1{:010d}", "https://www.ups.com/track?tracknum={}"),
    ("USPS", "9400111{:015d}", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
)
PARTIAL_SHARE = 0.25
STOCK_EVERY = 8          # intervals between two stock feeds


@dataclass(frozen=True)
class PoLine:
    number: int
    sku: str | None
    quantity: int


@dataclass(frozen=True)
class PurchaseOrder:
    po_number: str
    version: int
    action: str                      # new | change | cancel
    lines: tuple[PoLine, ...]


@dataclass
class Pending:
    """The shipments still to send for one purchase order file."""

    supplier: DemoSupplier
    file_name: str
    po: PurchaseOrder
    parts: list[tuple[float, tuple[PoLine, ...]]] = field(default_factory=list)
    sent: int = 0


def read_purchase_order(data: bytes) -> PurchaseOrder:
    """The PO number, version and lines of an OrderHub purchase order (native XML or UBL)."""
    root = ET.fromstring(data)  # noqa: S314 (OrderHub's own document)
    if root.tag == f"{{{PO_NS}}}PurchaseOrder":
        lines = tuple(
            PoLine(int(line.get("number", "0")), line.findtext(f"{{{PO_NS}}}Sku"),
                   int(line.findtext(f"{{{PO_NS}}}Quantity") or 0))
            for line in root.iterfind(f"{{{PO_NS}}}Lines/{{{PO_NS}}}Line"))
        return PurchaseOrder(root.findtext(f"{{{PO_NS}}}PoNumber") or "",
                             int(root.get("version", "1")), root.get("action", "new"), lines)
    if root.tag == UBL_ORDER:
        lines = tuple(
            PoLine(int(item.findtext(f"{{{CBC}}}ID") or 0),
                   item.findtext(f"{{{CAC}}}Item/{{{CAC}}}BuyersItemIdentification/{{{CBC}}}ID"),
                   int(float(item.findtext(f"{{{CBC}}}Quantity") or 0)))
            for item in root.iterfind(f"{{{CAC}}}OrderLine/{{{CAC}}}LineItem"))
        return PurchaseOrder(root.findtext(f"{{{CBC}}}ID") or "", 1, "new", lines)
    # OrderChange / OrderCancellation (UBL): the demo shop never changes an order.
    return PurchaseOrder("", 0, "change", ())


def split_shipment(lines: tuple[PoLine, ...], rng: random.Random
                   ) -> list[tuple[PoLine, ...]]:
    """All lines in one parcel, or (sometimes) about half of the units first, the rest later."""
    total = sum(line.quantity for line in lines)
    if total < 2 or rng.random() >= PARTIAL_SHARE:
        return [lines]
    first: list[PoLine] = []
    rest: list[PoLine] = []
    budget = (total + 1) // 2
    for line in lines:
        now = min(line.quantity, budget)
        budget -= now
        if now:
            first.append(PoLine(line.number, line.sku, now))
        if line.quantity - now:
            rest.append(PoLine(line.number, line.sku, line.quantity - now))
    return [tuple(first), tuple(rest)]


def native_notice(po: PurchaseOrder, lines: tuple[PoLine, ...], shipment_id: str,
                  parcel: tuple[str, str, str], shipped_at: datetime) -> bytes:
    """OrderHub's shipment notice, version 1 (elements in the schema's order)."""
    ET.register_namespace("", NOTICE_NS)

    def sub(parent: ET.Element, tag: str, text: str) -> None:
        ET.SubElement(parent, f"{{{NOTICE_NS}}}{tag}").text = text

    root = ET.Element(f"{{{NOTICE_NS}}}ShipmentNotice")
    sub(root, "PoNumber", po.po_number)
    sub(root, "Version", str(po.version))
    sub(root, "ShipmentId", shipment_id)
    sub(root, "ShippedAt", shipped_at.isoformat(timespec="seconds").replace("+00:00", "Z"))
    package = ET.SubElement(root, f"{{{NOTICE_NS}}}Package")
    carrier, number, url = parcel
    sub(package, "Carrier", carrier)
    sub(package, "TrackingNumber", number)
    sub(package, "TrackingUrl", url)
    for line in lines:
        element = ET.SubElement(root, f"{{{NOTICE_NS}}}Line")
        sub(element, "LineNumber", str(line.number))
        if line.sku:
            sub(element, "Sku", line.sku)
        sub(element, "Quantity", str(line.quantity))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return data + b"\n"


def csv_notice(po: PurchaseOrder, lines: tuple[PoLine, ...], shipment_id: str,
               parcel: tuple[str, str, str], shipped_at: datetime) -> bytes:
    """A CSV shipment notice with OrderHub's default column names."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("po_number", "line_number", "sku", "quantity", "carrier",
                     "tracking_number", "tracking_url", "shipped_at", "shipment_id"))
    carrier, number, url = parcel
    stamp = shipped_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    for line in lines:
        writer.writerow((po.po_number, line.number, line.sku or "", line.quantity, carrier,
                         number, url, stamp, shipment_id))
    return out.getvalue().encode()


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Suppliers:
    """Both demo suppliers' warehouses, looking at their folders every half second."""

    def __init__(self, paths: DemoPaths, interval: float, rng: random.Random) -> None:
        self.paths = paths
        self.interval = interval
        self.rng = rng
        self.pending: dict[tuple[str, str], Pending] = {}
        paths.supplier_state.parent.mkdir(parents=True, exist_ok=True)
        self.answered = set(paths.supplier_state.read_text().split()
                            if paths.supplier_state.exists() else ())
        self.next_stock = time.monotonic()

    def step(self) -> None:
        now = time.monotonic()
        for supplier in SUPPLIERS:
            self._look_for_orders(supplier, now)
        for key, item in list(self.pending.items()):
            while item.sent < len(item.parts) and item.parts[item.sent][0] <= now:
                self._ship(item)
            if item.sent == len(item.parts):
                self._answered(key)
                del self.pending[key]
        if now >= self.next_stock:
            for supplier in SUPPLIERS:
                self._stock_feed(supplier)
            self.next_stock = now + STOCK_EVERY * self.interval

    def _look_for_orders(self, supplier: DemoSupplier, now: float) -> None:
        inbound = self.paths.supplier_dir(supplier.key, "inbound")
        try:
            names = sorted(os.listdir(inbound))
        except FileNotFoundError:
            return
        for name in names:
            key = (supplier.key, name)
            if (not name.endswith(".xml") or name.startswith(".") or key in self.pending
                    or f"{supplier.key}/{name}" in self.answered):
                continue
            try:
                po = read_purchase_order((inbound / name).read_bytes())
            except (OSError, ET.ParseError, ValueError) as exc:
                say(supplier.key, f"cannot read {name}: {exc}")
                self._answered(key)
                continue
            if po.action != "new" or not po.lines:
                say(supplier.key, f"{name}: {po.action} noted (nothing new to ship)")
                self._answered(key)
                continue
            parts = split_shipment(po.lines, self.rng)
            due = now + self.interval * self.rng.uniform(0.8, 1.6)
            item = Pending(supplier, name, po)
            for part in parts:
                item.parts.append((due, part))
                due += self.interval * self.rng.uniform(1.5, 3.0)
            self.pending[key] = item
            units = sum(line.quantity for line in po.lines)
            how = "in 2 parcels, the first" if len(parts) > 1 else "in one parcel"
            say(supplier.key, f"purchase order {po.po_number} arrived ({name}, {units} "
                              f"unit(s)): ships {how} in about {item.parts[0][0] - now:.0f} s")

    def _ship(self, item: Pending) -> None:
        _due, lines = item.parts[item.sent]
        item.sent += 1
        carrier, number_format, url_format = self.rng.choice(CARRIERS)
        number = number_format.format(self.rng.randrange(10**10))
        parcel = (carrier, number, url_format.format(number))
        shipment_id = f"{item.supplier.key.upper()}-SH-{item.po.po_number}-{item.sent}"
        render = native_notice if item.supplier.notice_format == "xml" else csv_notice
        data = render(item.po, lines, shipment_id, parcel, datetime.now(UTC))
        suffix = "xml" if item.supplier.notice_format == "xml" else "csv"
        name = f"SHIP_{item.po.po_number}_{item.sent}.{suffix}"
        write_atomically(self.paths.supplier_dir(item.supplier.key, "shipments") / name, data)
        partial = (f" (part {item.sent} of {len(item.parts)})" if len(item.parts) > 1 else "")
        say(item.supplier.key, f"shipped {item.po.po_number}{partial}: {carrier} {number}"
                               f" -> shipments/{name}")

    def _answered(self, key: tuple[str, str]) -> None:
        entry = f"{key[0]}/{key[1]}"
        self.answered.add(entry)
        with open(self.paths.supplier_state, "a", encoding="utf-8") as f:
            f.write(entry + "\n")

    def _stock_feed(self, supplier: DemoSupplier) -> None:
        folder = self.paths.supplier_dir(supplier.key, "stock")
        if not folder.is_dir():
            return
        rows = "".join(f"{p.sku},{self.rng.randrange(0, 121)}\n" for p in products_of(supplier))
        write_atomically(folder / STOCK_FEED, ("sku,quantity\n" + rows).encode())
        say(supplier.key, f"stock feed written: stock/{STOCK_FEED} "
                          f"({len(products_of(supplier))} SKUs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo suppliers' warehouses.")
    parser.add_argument("--demo-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    warehouses = Suppliers(DemoPaths(args.demo_dir.resolve()), args.interval,
                           random.Random(args.seed))  # noqa: S311 (made-up parcels)
    while not stop.is_set():
        warehouses.step()
        stop.wait(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
