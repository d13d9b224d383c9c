"""Turning an accepted order into purchase orders: route its lines, then keep one purchase order
per (order, supplier) in step with the order, version by version.

Runs inside the caller's transaction (the webhook's, or `orders reroute`'s), so an order and its
purchase orders are committed together or not at all. Nothing is sent from here.

Versions: while a purchase order is unsent, an order update replaces its document in place;
once sent, a change makes a new version (a change document that lists removed lines with
quantity 0), and a cancellation makes a cancel document. A cancellation before sending only
withdraws it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.documents import render_document
from app.documents.model import (
    Action,
    Contact,
    DocumentInvalid,
    Party,
    PoLine,
    PostalAddress,
    PurchaseOrderDoc,
)
from app.models import (
    LineRouting,
    Order,
    OrderLine,
    OrderStatus,
    PoStatus,
    PurchaseOrder,
    SkuMapEntry,
)
from app.routing import SkuCandidate, route_line
from app.suppliers import SupplierBook, normalize_sku

log = logging.getLogger(__name__)

PAID = frozenset({"paid", "partially_paid"})


@dataclass(frozen=True)
class Purchasing:
    """What routing needs to know beyond the order: suppliers and the seller's policy."""

    book: SupplierBook
    buyer: Party
    dispatch_on: str = "paid"           # paid | created
    accept_test_orders: bool = False


@dataclass
class RoutingResult:
    order_status: str
    created: list[uuid.UUID] = field(default_factory=list)    # new purchase-order versions
    replaced: list[uuid.UUID] = field(default_factory=list)   # unsent documents rewritten
    withdrawn: list[uuid.UUID] = field(default_factory=list)
    unrouted: int = 0


def route_order(
    session: Session, *, order_id: uuid.UUID, purchasing: Purchasing, now: datetime
) -> RoutingResult:
    """Route the order's lines and bring its purchase orders in step. The caller commits."""
    # populate_existing: the intake writes orders with Core statements, so anything this
    # session cached about the order may be stale.
    order = session.get(Order, order_id, with_for_update=_lock(session), populate_existing=True)
    assert order is not None, order_id
    lines = list(session.execute(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.position)
        .execution_options(populate_existing=True)
    ).scalars())
    existing = list(session.execute(
        select(PurchaseOrder).where(PurchaseOrder.order_id == order_id)
        .order_by(PurchaseOrder.supplier, PurchaseOrder.version)
    ).scalars())
    result = RoutingResult(order_status=order.status)

    if order.cancelled_at is None and not existing:
        waiting = _waiting_status(order, purchasing)
        if waiting is not None:
            order.status = result.order_status = waiting
            return result

    if order.cancelled_at is None:
        _route_lines(session, lines, purchasing.book)
    wanted: dict[str, list[OrderLine]] = {}
    for line in lines:
        if line.routing == LineRouting.ROUTED and line.supplier and line.quantity > 0:
            wanted.setdefault(line.supplier, []).append(line)
    by_supplier: dict[str, list[PurchaseOrder]] = {}
    for po in existing:
        by_supplier.setdefault(po.supplier, []).append(po)

    for supplier_key in sorted(set(wanted) | set(by_supplier)):
        current = [] if order.cancelled_at else wanted.get(supplier_key, [])
        _sync_supplier(session, order, supplier_key, current, by_supplier.get(supplier_key, []),
                       purchasing, now, result)

    result.unrouted = sum(1 for line in lines if line.routing == LineRouting.NEEDS_MAPPING)
    if order.cancelled_at is not None:
        order.status = OrderStatus.CANCELLED
    elif result.unrouted:
        order.status = OrderStatus.NEEDS_ATTENTION
    else:
        order.status = OrderStatus.ROUTED
    result.order_status = order.status
    return result


def find_purchase_order(session: Session, ref: str) -> PurchaseOrder | None:
    """A purchase order by id, or the newest version with that PO number or file name."""
    try:
        return session.get(PurchaseOrder, uuid.UUID(ref))
    except ValueError:
        pass
    return session.execute(
        select(PurchaseOrder)
        .where((PurchaseOrder.po_number == ref) | (PurchaseOrder.file_name == ref))
        .order_by(PurchaseOrder.version.desc())
    ).scalars().first()


def _waiting_status(order: Order, purchasing: Purchasing) -> str | None:
    """Why an order that has no purchase orders yet must not get any now (None: it may)."""
    if order.test and not purchasing.accept_test_orders:
        return OrderStatus.TEST
    if purchasing.dispatch_on == "paid" and (order.financial_status or "") not in PAID:
        return OrderStatus.AWAITING_PAYMENT
    return None


def _route_lines(session: Session, lines: list[OrderLine], book: SupplierBook) -> None:
    skus = {s for s in (normalize_sku(line.sku) for line in lines) if s}
    sku_map: dict[str, list[SkuCandidate]] = {}
    if skus:
        for entry in session.execute(select(SkuMapEntry).where(SkuMapEntry.sku.in_(skus))
                                     ).scalars():
            sku_map.setdefault(entry.sku, []).append(
                SkuCandidate(entry.supplier, entry.supplier_sku, entry.cost, entry.priority))
    frozen = {k: tuple(v) for k, v in sku_map.items()}
    for line in lines:
        if not line.requires_shipping or line.gift_card:
            line.routing, line.routing_reason = LineRouting.NOT_SHIPPED, None
            continue
        if line.routing == LineRouting.ROUTED and line.supplier:
            continue  # a line keeps its supplier once routed; its purchase order may be out
        route = route_line(line.sku, line.vendor, book, frozen)
        if route.supplier is None:
            line.routing, line.routing_reason, line.supplier = (
                LineRouting.NEEDS_MAPPING, route.reason, None)
            continue
        line.routing, line.routing_reason = LineRouting.ROUTED, None
        line.supplier, line.supplier_sku, line.unit_cost = (
            route.supplier, route.supplier_sku, route.cost)


def _sync_supplier(
    session: Session, order: Order, supplier_key: str, current: list[OrderLine],
    versions: list[PurchaseOrder], purchasing: Purchasing, now: datetime,
    result: RoutingResult,
) -> None:
    latest = versions[-1] if versions else None
    sent = [po for po in versions if po.status == PoStatus.SENT]
    last_sent = sent[-1] if sent else None
    cancelled_sent = last_sent is not None and last_sent.action == "cancel"

    if not current:  # cancelled, or no line left for this supplier
        if latest is None or latest.status == PoStatus.WITHDRAWN or cancelled_sent:
            return
        if last_sent is None:
            latest.status, latest.updated_at = PoStatus.WITHDRAWN, now
            result.withdrawn.append(latest.id)
            return
        po_lines = _removed(last_sent, set())
        _write(session, order, supplier_key, "cancel", po_lines, latest, versions, purchasing,
               now, result)
        return

    if cancelled_sent:
        return  # the supplier was told to cancel; a later change cannot revive the order
    po_lines = [_po_line(line) for line in current]
    if last_sent is not None:
        po_lines += _removed(last_sent, {pl.line_number for pl in po_lines})
    action: Action = "new" if last_sent is None else "change"
    key = _content_key(order, po_lines)
    if latest is not None and latest.status != PoStatus.WITHDRAWN and latest.content_key == key:
        return  # nothing the supplier would see has changed
    _write(session, order, supplier_key, action, po_lines, latest, versions, purchasing, now,
           result)


def _write(
    session: Session, order: Order, supplier_key: str, action: Action, po_lines: list[PoLine],
    latest: PurchaseOrder | None, versions: list[PurchaseOrder], purchasing: Purchasing,
    now: datetime, result: RoutingResult,
) -> None:
    """Replace the unsent latest version, or add a new version."""
    replace = latest is not None and latest.status in (PoStatus.PENDING, PoStatus.FAILED)
    version = latest.version if (replace and latest) else (versions[-1].version + 1
                                                          if versions else 1)
    supplier = purchasing.book.get(supplier_key)
    fmt = supplier.format if supplier else "orderhub"
    number = _safe(order.number) or _safe(order.external_id)
    po_number = f"{_safe(order.channel)}-{number}-{supplier_key}"
    sent = [po for po in versions if po.status == PoStatus.SENT]
    doc = PurchaseOrderDoc(
        po_number=po_number,
        version=version,
        action=action,
        issued_at=now,
        order_number=order.number,
        order_placed_at=order.placed_at,
        currency=order.currency,
        buyer=purchasing.buyer,
        supplier=Party(id=supplier_key, name=supplier.name if supplier else supplier_key),
        ship_to=_address(order.shipping_address),
        contact=_contact(order),
        lines=tuple(po_lines),
        notes=order.note,
        payload_id=f"{po_number}.v{version}@orderhub",
        previous_payload_id=sent[-1].payload_id if sent else None,
    )
    status, error, document = PoStatus.PENDING, None, None
    try:
        document = render_document(fmt, doc)
    except DocumentInvalid as exc:
        status, error = PoStatus.FAILED, str(exc)
        log.error("ALERT purchase order %s v%s for %s failed validation: %s", po_number,
                  version, supplier_key, exc)
    values: dict[str, Any] = dict(
        po_number=po_number, version=version, action=action, status=status, format=fmt,
        file_name=f"PO_{supplier_key}_{_safe(order.channel)}-{number}_v{version}.xml",
        payload_id=doc.payload_id, content_key=_content_key(order, po_lines),
        lines=[_line_json(pl) for pl in po_lines], document=document,
        sha256=hashlib.sha256(document).hexdigest() if document else None, error=error,
        updated_at=now,
    )
    if replace and latest is not None:
        for name, value in values.items():
            setattr(latest, name, value)
        result.replaced.append(latest.id)
        return
    po = PurchaseOrder(order_id=order.id, supplier=supplier_key, created_at=now, **values)
    session.add(po)
    session.flush([po])
    versions.append(po)
    result.created.append(po.id)


def _po_line(line: OrderLine) -> PoLine:
    return PoLine(line_number=line.position + 1, sku=line.sku, supplier_sku=line.supplier_sku,
                  title=line.title, quantity=line.quantity, unit_price=line.unit_cost)


def _removed(last_sent: PurchaseOrder, keep: set[int]) -> list[PoLine]:
    """Lines the supplier was last sent with a quantity, now gone: listed with quantity 0."""
    return [
        PoLine(line_number=int(d["line_number"]), sku=d["sku"], supplier_sku=d["supplier_sku"],
               title=d["title"], quantity=0,
               unit_price=Decimal(d["unit_price"]) if d["unit_price"] is not None else None)
        for d in last_sent.lines
        if int(d["quantity"]) > 0 and int(d["line_number"]) not in keep
    ]


def _line_json(pl: PoLine) -> dict[str, Any]:
    data = asdict(pl)
    data["unit_price"] = None if pl.unit_price is None else str(pl.unit_price)
    return data


def _content_key(order: Order, po_lines: Iterable[PoLine]) -> str:
    """A fingerprint of what a supplier reads: the lines still wanted, address and notes."""
    live = sorted((_line_json(pl) for pl in po_lines if pl.quantity > 0),
                  key=lambda d: int(d["line_number"]))
    blob = json.dumps([live, order.shipping_address, order.note], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _address(raw: dict[str, Any] | None) -> PostalAddress | None:
    if not raw:
        return None
    return PostalAddress(
        name=raw.get("name"), company=raw.get("company"), address1=raw.get("address1"),
        address2=raw.get("address2"), city=raw.get("city"), region=raw.get("province"),
        region_code=raw.get("province_code"), postal_code=raw.get("zip"),
        country_code=raw.get("country_code"), country=raw.get("country"),
        phone=raw.get("phone"),
    )


def _contact(order: Order) -> Contact | None:
    if not (order.customer_name or order.customer_email or order.customer_phone):
        return None
    return Contact(name=order.customer_name, email=order.customer_email,
                   phone=order.customer_phone)


def _safe(text: str) -> str:
    """Only characters every file system and SFTP server accepts: A-Z a-z 0-9 . _ -"""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-.")[:64]


def _lock(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
