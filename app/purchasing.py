"""Turning an accepted order into purchase orders: route its lines, then keep one purchase order
per (order, supplier) in step with the order, version by version.

Runs inside the caller's transaction (the webhook's, or `orders reroute`'s), so an order, its
purchase orders and the outbox jobs that will send them are committed together or not at all.
Nothing is sent from here.

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
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Insert, Row, Select, Update, bindparam, insert, select, update
from sqlalchemy.engine import Connection
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
    JobKind,
    LineRouting,
    Order,
    OrderLine,
    OrderStatus,
    PoStatus,
    PurchaseOrder,
)
from app.outbox import insert_jobs, job_row
from app.routing import SkuCandidate, route_line
from app.suppliers import SupplierBook, normalize_sku
from app.types import new_id

log = logging.getLogger(__name__)

PAID = frozenset({"paid", "partially_paid"})


@dataclass(frozen=True)
class Purchasing:
    """What routing needs to know beyond the order: suppliers and the seller's policy."""

    book: SupplierBook
    buyer: Party
    dispatch_on: str = "paid"           # paid | created
    accept_test_orders: bool = False
    # Channels whose stock OrderHub keeps: an accepted order re-pushes its SKUs' quantities
    # there at once (push_inventory jobs), not at the next stock sync.
    inventory_channels: tuple[str, ...] = ()


@dataclass
class RoutingResult:
    order_status: str
    created: list[uuid.UUID] = field(default_factory=list)    # new purchase-order versions
    replaced: list[uuid.UUID] = field(default_factory=list)   # unsent documents rewritten
    withdrawn: list[uuid.UUID] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)         # suppliers whose document failed
    unrouted: int = 0


def route_order(
    session: Session, *, order_id: uuid.UUID, purchasing: Purchasing, now: datetime
) -> RoutingResult:
    """Route the order's lines and bring its purchase orders in step. The caller commits."""
    # Core statements on plain records, not ORM objects: this runs inside every webhook's
    # write transaction, and the ORM's unit of work cost more than the rest of the request.
    conn = session.connection()
    sql = _statements(conn.dialect.name)
    order = conn.execute(sql.order, {"order_id": order_id}).one()
    lines = [_Line(**row._mapping) for row in conn.execute(sql.lines, {"order_id": order_id})]
    existing = [_Po(**row._mapping) for row in conn.execute(sql.pos, {"order_id": order_id})]
    result = RoutingResult(order_status=order.status)

    if order.cancelled_at is None and not existing:
        waiting = _waiting_status(order, purchasing)
        if waiting is not None:
            _set_order_status(conn, sql, order, waiting, now)
            result.order_status = waiting
            return result

    if order.cancelled_at is None:
        _route_lines(conn, sql, lines, purchasing.book)
    wanted: dict[str, list[_Line]] = {}
    for line in lines:
        if line.routing == LineRouting.ROUTED and line.supplier and line.quantity > 0:
            wanted.setdefault(line.supplier, []).append(line)
    by_supplier: dict[str, list[_Po]] = {}
    for po in existing:
        by_supplier.setdefault(po.supplier, []).append(po)

    writes: list[_Po] = []
    for supplier_key in sorted(set(wanted) | set(by_supplier)):
        current = [] if order.cancelled_at else wanted.get(supplier_key, [])
        _sync_supplier(order, supplier_key, current, by_supplier.setdefault(supplier_key, []),
                       purchasing, now, result, writes)

    dirty = [line.params() for line in lines if line.dirty]
    if dirty:
        conn.execute(sql.update_line, dirty)
    inserts = [po.row for po in writes if po.is_new]
    if inserts:
        conn.execute(sql.insert_po, inserts)
    for po in writes:
        if not po.is_new:
            conn.execute(sql.update_po, {**po.row, "_id": po.id})
    # A version that has just become sendable gets its upload job; one that was pending already
    # has one (a dispatcher reads the document when it sends, so a replaced one goes out).
    insert_jobs(session, [
        job_row(kind=JobKind.SEND_PO, target=str(po.id), lane=po.supplier, now=now)
        for po in writes
        if po.row.get("status") == PoStatus.PENDING and (po.is_new or po.status != PoStatus.PENDING)
    ])
    if writes and purchasing.inventory_channels:
        # What is reserved for this order changed with its purchase orders: every channel
        # listing these SKUs gets their new quantity within seconds.
        skus = sorted({line.sku for line in lines if line.sku and line.routing in (
            LineRouting.ROUTED, LineRouting.NEEDS_MAPPING)})
        if skus:
            insert_jobs(session, [
                job_row(kind=JobKind.PUSH_INVENTORY, target=str(order_id),
                        lane=f"channel:{channel}:stock", now=now, data={"skus": skus})
                for channel in purchasing.inventory_channels])

    result.unrouted = sum(1 for line in lines
                          if line.routing == LineRouting.NEEDS_MAPPING and line.quantity > 0)
    if order.cancelled_at is not None:
        status = OrderStatus.CANCELLED
    elif result.unrouted or result.failed:
        status = OrderStatus.NEEDS_ATTENTION
    else:
        status = shipping_status(
            (line.quantity, line.shipped_quantity) for line in lines
            if line.routing == LineRouting.ROUTED) or OrderStatus.ROUTED
    _set_order_status(conn, sql, order, status, now)
    result.order_status = status
    return result


@dataclass
class _Line:
    """An order line as routing reads and changes it."""

    id: uuid.UUID
    position: int
    sku: str | None
    title: str
    vendor: str | None
    quantity: int
    requires_shipping: bool
    gift_card: bool
    routing: str
    routing_reason: str | None
    supplier: str | None
    supplier_sku: str | None
    unit_cost: Decimal | None
    shipped_quantity: int
    dirty: bool = False

    def set_route(self, routing: str, reason: str | None, supplier: str | None,
                  supplier_sku: str | None, unit_cost: Decimal | None) -> None:
        new = (routing, reason, supplier, supplier_sku, unit_cost)
        if new != (self.routing, self.routing_reason, self.supplier, self.supplier_sku,
                   self.unit_cost):
            (self.routing, self.routing_reason, self.supplier, self.supplier_sku,
             self.unit_cost) = new
            self.dirty = True

    def params(self) -> dict[str, Any]:
        return {"_id": self.id, "routing": self.routing, "routing_reason": self.routing_reason,
                "supplier": self.supplier, "supplier_sku": self.supplier_sku,
                "unit_cost": self.unit_cost}


@dataclass
class _Po:
    """A purchase-order version as routing reads it; `row` holds what is to be written."""

    id: uuid.UUID
    supplier: str
    version: int
    action: str
    status: str
    content_key: str
    payload_id: str
    lines: list[dict[str, Any]]
    is_new: bool = False
    row: dict[str, Any] = field(default_factory=dict)


def shipping_status(lines: Iterable[tuple[int, int]]) -> str | None:
    """`shipped` when every supplier line (quantity, shipped) shipped in full,
    `partially_shipped` when some of it did, None when nothing shipped yet."""
    wanted = [(quantity, shipped) for quantity, shipped in lines if quantity > 0]
    if not any(shipped > 0 for _, shipped in wanted):
        return None
    if all(shipped >= quantity for quantity, shipped in wanted):
        return OrderStatus.SHIPPED
    return OrderStatus.PARTIALLY_SHIPPED


def lock_orders(session: Session, order_ids: Iterable[uuid.UUID]) -> None:
    """On PostgreSQL, take the orders' row locks first, in id order, as routing does, so that
    work touching an order's lines or purchase orders never deadlocks with routing."""
    ids = sorted(set(order_ids))
    if ids and session.get_bind().dialect.name == "postgresql":
        session.execute(select(Order.id).where(Order.id.in_(ids)).order_by(Order.id)
                        .with_for_update())


def settle_status(session: Session, order_id: uuid.UUID, now: datetime) -> None:
    """An order `needs_attention` only while something needs a person: a line without a
    supplier, or a supplier's latest purchase order failed or rejected. Once that is resolved
    (a resend went through, say), it is routed / shipped again."""
    order = session.get(Order, order_id)
    if order is None or order.status not in (OrderStatus.NEEDS_ATTENTION, OrderStatus.ROUTED,
                                             OrderStatus.PARTIALLY_SHIPPED):
        return
    lines = list(session.execute(select(OrderLine).where(OrderLine.order_id == order_id))
                 .scalars())
    if order.status == OrderStatus.NEEDS_ATTENTION:
        if any(line.routing == LineRouting.NEEDS_MAPPING and line.quantity > 0
               for line in lines):
            return
        latest: dict[str, str] = {}
        for supplier, status in session.execute(
                select(PurchaseOrder.supplier, PurchaseOrder.status)
                .where(PurchaseOrder.order_id == order_id).order_by(PurchaseOrder.version)):
            latest[supplier] = status
        if any(status in (PoStatus.FAILED, PoStatus.REJECTED) for status in latest.values()):
            return
    status = shipping_status((line.quantity, line.shipped_quantity) for line in lines
                             if line.routing == LineRouting.ROUTED) or OrderStatus.ROUTED
    if status != order.status:
        order.status = status
        order.updated_at = now


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


def _waiting_status(order: Row[Any], purchasing: Purchasing) -> str | None:
    """Why an order that has no purchase orders yet must not get any now (None: it may)."""
    if order.test and not purchasing.accept_test_orders:
        return OrderStatus.TEST
    if purchasing.dispatch_on == "paid" and (order.financial_status or "") not in PAID:
        return OrderStatus.AWAITING_PAYMENT
    return None


def _route_lines(conn: Connection, sql: _Sql, lines: list[_Line], book: SupplierBook) -> None:
    skus = sorted({s for s in (normalize_sku(line.sku) for line in lines) if s})
    sku_map: dict[str, list[SkuCandidate]] = {}
    if skus:
        for entry in conn.execute(sql.sku_map, {"skus": skus}):
            sku_map.setdefault(entry.sku, []).append(
                SkuCandidate(entry.supplier, entry.supplier_sku, entry.cost, entry.priority))
    frozen = {k: tuple(v) for k, v in sku_map.items()}
    for line in lines:
        if not line.requires_shipping or line.gift_card:
            line.set_route(LineRouting.NOT_SHIPPED, None, None, None, None)
            continue
        if line.routing == LineRouting.ROUTED and line.supplier:
            continue  # a line keeps its supplier once routed; its purchase order may be out
        route = route_line(line.sku, line.vendor, book, frozen)
        if route.supplier is None:
            line.set_route(LineRouting.NEEDS_MAPPING, route.reason, None, None, None)
        else:
            line.set_route(LineRouting.ROUTED, None, route.supplier, route.supplier_sku,
                           route.cost)


def _sync_supplier(
    order: Row[Any], supplier_key: str, current: list[_Line], versions: list[_Po],
    purchasing: Purchasing, now: datetime, result: RoutingResult, writes: list[_Po],
) -> None:
    # Once a cancel document has been sent, that purchase order is closed for the supplier.
    # Lines that come back later (an edit re-adds them) start a new purchase order, with its
    # own number, rather than reviving the cancelled one.
    cancels = [i for i, po in enumerate(versions)
               if po.status in PoStatus.DELIVERED and po.action == "cancel"]
    cycle = versions[cancels[-1] + 1:] if cancels else list(versions)
    latest = cycle[-1] if cycle else None
    sent = [po for po in cycle if po.status in PoStatus.DELIVERED]
    last_sent = sent[-1] if sent else None

    if not current:  # cancelled, or no line left for this supplier
        if latest is None or latest.status == PoStatus.WITHDRAWN:
            return
        if last_sent is None:
            latest.status = PoStatus.WITHDRAWN
            latest.row = {"status": PoStatus.WITHDRAWN, "updated_at": now}
            writes.append(latest)
            result.withdrawn.append(latest.id)
            return
        po_lines = _removed(last_sent, set())
        _write(order, supplier_key, "cancel", po_lines, _content_key(order, po_lines), latest,
               versions, cycle, len(cancels) + 1, purchasing, now, result, writes)
        return

    po_lines = [_po_line(line) for line in current]
    if last_sent is not None:
        po_lines += _removed(last_sent, {pl.line_number for pl in po_lines})
    action: Action = "new" if last_sent is None else "change"
    key = _content_key(order, po_lines)
    if (latest is not None and latest.status not in (PoStatus.WITHDRAWN, PoStatus.FAILED)
            and latest.content_key == key):
        return  # nothing the supplier would see has changed
    if (last_sent is not None and latest is not None and latest is not last_sent
            and latest.status in (PoStatus.PENDING, PoStatus.FAILED)
            and last_sent.content_key == key):
        # An edit undone before its change document went out: the supplier already has this.
        latest.status = PoStatus.WITHDRAWN
        latest.row = {"status": PoStatus.WITHDRAWN, "updated_at": now}
        writes.append(latest)
        result.withdrawn.append(latest.id)
        return
    _write(order, supplier_key, action, po_lines, key, latest, versions, cycle,
           len(cancels) + 1, purchasing, now, result, writes)


def _write(
    order: Row[Any], supplier_key: str, action: Action, po_lines: list[PoLine], key: str,
    latest: _Po | None, versions: list[_Po], cycle: list[_Po], round_: int,
    purchasing: Purchasing, now: datetime, result: RoutingResult, writes: list[_Po],
) -> None:
    """Replace the unsent latest version, or add a new version. `round_` counts purchase
    orders to this supplier for this order: 2 and up follow a cancelled one."""
    replace = latest is not None and latest.status in (PoStatus.PENDING, PoStatus.FAILED)
    version = latest.version if (replace and latest) else (versions[-1].version + 1
                                                          if versions else 1)
    supplier = purchasing.book.get(supplier_key)
    fmt = supplier.format if supplier else "orderhub"
    number = _safe(order.number) or _safe(order.external_id)
    if round_ > 1:
        number = f"{number}-{round_}"
    po_number = f"{_safe(order.channel)}-{number}-{supplier_key}"
    sent = [po for po in cycle if po.status in PoStatus.DELIVERED]
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
        result.failed.append(supplier_key)
        log.error("ALERT purchase order %s v%s for %s failed validation: %s", po_number,
                  version, supplier_key, exc)
    values: dict[str, Any] = dict(
        po_number=po_number, version=version, action=action, status=status, format=fmt,
        file_name=f"PO_{supplier_key}_{_safe(order.channel)}-{number}_v{version}.xml",
        payload_id=doc.payload_id, content_key=key,
        lines=[_line_json(pl) for pl in po_lines], document=document,
        sha256=hashlib.sha256(document).hexdigest() if document else None, error=error,
        updated_at=now,
    )
    if replace and latest is not None:
        latest.row = values
        writes.append(latest)
        result.replaced.append(latest.id)
        return
    po = _Po(id=new_id(), supplier=supplier_key, version=version, action=action, status=status,
             content_key=values["content_key"], payload_id=doc.payload_id,
             lines=values["lines"], is_new=True)
    po.row = {**values, "id": po.id, "order_id": order.id, "supplier": supplier_key,
              "created_at": now, "sent_at": None}
    versions.append(po)
    writes.append(po)
    result.created.append(po.id)


def _po_line(line: _Line) -> PoLine:
    return PoLine(line_number=line.position + 1, sku=line.sku, supplier_sku=line.supplier_sku,
                  title=line.title, quantity=line.quantity, unit_price=line.unit_cost)


def _removed(last_sent: _Po, keep: set[int]) -> list[PoLine]:
    """Lines the supplier was last sent with a quantity, now gone: listed with quantity 0."""
    return [
        PoLine(line_number=int(d["line_number"]), sku=d["sku"], supplier_sku=d["supplier_sku"],
               title=d["title"], quantity=0,
               unit_price=Decimal(d["unit_price"]) if d["unit_price"] is not None else None)
        for d in last_sent.lines
        if int(d["quantity"]) > 0 and int(d["line_number"]) not in keep
    ]


def _line_json(pl: PoLine) -> dict[str, Any]:
    data = dict(vars(pl))  # not asdict(), which deep-copies
    data["unit_price"] = None if pl.unit_price is None else str(pl.unit_price)
    return data


def _content_key(order: Row[Any], po_lines: Iterable[PoLine]) -> str:
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


def _contact(order: Row[Any]) -> Contact | None:
    if not (order.customer_name or order.customer_email or order.customer_phone):
        return None
    return Contact(name=order.customer_name, email=order.customer_email,
                   phone=order.customer_phone)


def _safe(text: str) -> str:
    """Only characters every file system and SFTP server accepts: A-Z a-z 0-9 . _ -"""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-.")[:64]


def _set_order_status(conn: Connection, sql: _Sql, order: Row[Any], status: str,
                      now: datetime) -> None:
    if status != order.status:
        conn.execute(sql.update_order, {"_id": order.id, "status": status, "updated_at": now})


@dataclass(frozen=True)
class _Sql:
    order: Select[Any]
    lines: Select[Any]
    pos: Select[Any]
    sku_map: Select[Any]
    update_line: Update
    update_order: Update
    insert_po: Insert
    update_po: Update


@cache
def _statements(dialect: str) -> _Sql:
    """Routing's statements, built once so SQLAlchemy compiles each once per process."""
    tables = Order.metadata.tables
    orders, lines, pos, skus = (tables["orders"], tables["order_lines"],
                                tables["purchase_orders"], tables["sku_map"])
    order = select(orders).where(orders.c.id == bindparam("order_id"))
    if dialect == "postgresql":
        order = order.with_for_update()  # one routing at a time per order
    line_fields = [lines.c[name] for name in _Line.__dataclass_fields__ if name != "dirty"]
    po_fields = [pos.c[name] for name in ("id", "supplier", "version", "action", "status",
                                          "content_key", "payload_id", "lines")]
    return _Sql(
        order=order,
        lines=select(*line_fields).where(lines.c.order_id == bindparam("order_id"))
        .order_by(lines.c.position),
        pos=select(*po_fields).where(pos.c.order_id == bindparam("order_id"))
        .order_by(pos.c.supplier, pos.c.version),
        sku_map=select(skus.c.sku, skus.c.supplier, skus.c.supplier_sku, skus.c.cost,
                       skus.c.priority).where(skus.c.sku.in_(bindparam("skus", expanding=True))),
        update_line=update(lines).where(lines.c.id == bindparam("_id")),
        update_order=update(orders).where(orders.c.id == bindparam("_id")),
        insert_po=insert(pos),
        update_po=update(pos).where(pos.c.id == bindparam("_id")),
    )
