"""What the operator reads, shared by the JSON API (`app/api/`) and the dashboard
(`app/dashboard/`): orders, purchase orders, shipments, the outbox, stock, and the overview's
counts. Plain functions over the caller's session, no Flask; each entry point parses its own
input, calls these, and renders the result its own way (JSON or HTML)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.orm import Session

from app.models import (
    ChannelListing,
    EventStatus,
    InboundFile,
    Order,
    OrderLine,
    OutboxJob,
    PurchaseOrder,
    Shipment,
    StockFeed,
    StockLevel,
    WebhookEvent,
)
from app.types import utcnow
from stock.availability import available, layer_rules
from stock.levels import StockRules, _sku_rule, feed_totals, reserved

# ---------------------------------------------------------------- orders


def select_orders(session: Session, *, limit: int, channel: str | None = None,
                  status: str | None = None, since: datetime | None = None,
                  until: datetime | None = None,
                  after: tuple[datetime, uuid.UUID] | None = None) -> tuple[list[Order], bool]:
    """Newest first (by when the order was placed, then id): one page of at most `limit`
    orders after the keyset `after` (see `decode_cursor`), and whether more follow."""
    stmt = select(Order)
    if channel:
        stmt = stmt.where(Order.channel == channel)
    if status:
        stmt = stmt.where(Order.status == status)
    if since is not None:
        stmt = stmt.where(Order.placed_at >= since)
    if until is not None:
        stmt = stmt.where(Order.placed_at < until)
    if after is not None:
        at, last_id = after
        stmt = stmt.where(
            or_(Order.placed_at < at, and_(Order.placed_at == at, Order.id < last_id))
        )
    stmt = stmt.order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit + 1)
    orders = list(session.execute(stmt).scalars())
    return orders[:limit], len(orders) > limit


def encode_cursor(order: Order) -> str:
    """The keyset of the last order on a page, as an opaque string for the next page."""
    raw = f"{order.placed_at.isoformat()}|{order.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The keyset `encode_cursor` made; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when.astimezone(UTC), uuid.UUID(ident)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor this server made") from None


def order_lines(session: Session, order_id: uuid.UUID) -> list[OrderLine]:
    """An order's lines in the channel's order."""
    return list(session.execute(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.position)
    ).scalars())


def order_events(session: Session, order_id: uuid.UUID) -> Sequence[Row[Any]]:
    """The deliveries behind an order, oldest first (id, topic, status, received_at)."""
    return session.execute(
        select(WebhookEvent.id, WebhookEvent.topic, WebhookEvent.status,
               WebhookEvent.received_at)
        .where(WebhookEvent.order_id == order_id)
        .order_by(WebhookEvent.received_at)
    ).all()


def order_shipments(session: Session, order_id: uuid.UUID) -> list[Shipment]:
    """What suppliers shipped for an order, oldest first."""
    return list(session.execute(
        select(Shipment).where(Shipment.order_id == order_id)
        .order_by(Shipment.created_at, Shipment.id)
    ).scalars())


def pending_deliveries(session: Session) -> tuple[int, datetime | None]:
    """Webhook deliveries acknowledged and not applied yet, and when the oldest arrived."""
    count, oldest = session.execute(
        select(func.count(), func.min(WebhookEvent.received_at))
        .where(WebhookEvent.status == EventStatus.PENDING)).one()
    return count, oldest


def orders_by_status(session: Session) -> dict[str, int]:
    """How many orders are in each status."""
    rows = session.execute(select(Order.status, func.count()).group_by(Order.status))
    return {status: count for status, count in rows}


# ---------------------------------------------------------------- purchase orders


def select_purchase_orders(session: Session, *, limit: int, offset: int = 0,
                           status: str | None = None, supplier: str | None = None,
                           order_id: uuid.UUID | None = None) -> list[PurchaseOrder]:
    """Newest first, filtered, one page."""
    stmt = select(PurchaseOrder)
    if status:
        stmt = stmt.where(PurchaseOrder.status == status)
    if supplier:
        stmt = stmt.where(PurchaseOrder.supplier == supplier)
    if order_id is not None:
        stmt = stmt.where(PurchaseOrder.order_id == order_id)
    stmt = stmt.order_by(PurchaseOrder.created_at.desc(), PurchaseOrder.id.desc())
    return list(session.execute(stmt.offset(offset).limit(limit)).scalars())


def purchase_order_suppliers(session: Session) -> list[str]:
    """Every supplier that has a purchase order, for a filter."""
    return list(session.execute(
        select(PurchaseOrder.supplier).distinct().order_by(PurchaseOrder.supplier)).scalars())


# ---------------------------------------------------------------- outbox


def select_jobs(session: Session, *, limit: int, offset: int = 0, status: str | None = None,
                kind: str | None = None, lane: str | None = None) -> list[OutboxJob]:
    """Outbox jobs newest first, filtered, one page."""
    stmt = select(OutboxJob)
    if status:
        stmt = stmt.where(OutboxJob.status == status)
    if kind:
        stmt = stmt.where(OutboxJob.kind == kind)
    if lane:
        stmt = stmt.where(OutboxJob.lane == lane)
    stmt = stmt.order_by(OutboxJob.created_at.desc(), OutboxJob.id.desc())
    return list(session.execute(stmt.offset(offset).limit(limit)).scalars())


# ---------------------------------------------------------------- inbound files and stock


def quarantined_files(session: Session, *, limit: int) -> tuple[int, Sequence[Row[Any]]]:
    """How many supplier files are kept but not applied, and the newest of them (id, supplier,
    kind, name, error, received_at; never their content)."""
    where = InboundFile.status == "quarantined"
    total = session.execute(select(func.count()).select_from(InboundFile).where(where))
    newest = session.execute(
        select(InboundFile.id, InboundFile.supplier, InboundFile.kind, InboundFile.name,
               InboundFile.error, InboundFile.received_at)
        .where(where).order_by(InboundFile.received_at.desc()).limit(limit)).all()
    return int(total.scalar_one()), newest


def stock_feeds(session: Session) -> Sequence[Row[Any]]:
    """Each supplier's stock feed state (without a held feed's content)."""
    return session.execute(
        select(StockFeed.supplier, StockFeed.status, StockFeed.reason, StockFeed.feed_at,
               StockFeed.read_at, StockFeed.skus, StockFeed.total, StockFeed.bad_rows)
        .order_by(StockFeed.supplier)).all()


def inventory_skus(session: Session, *, limit: int, after: str = "") -> tuple[list[str], bool]:
    """SKUs in order after `after` that a feed or a channel listing knows: one page, and
    whether more follow."""
    skus = sorted(set(session.execute(select(StockLevel.sku).where(
        StockLevel.sku > after).distinct().order_by(StockLevel.sku).limit(limit + 1))
        .scalars()) | set(session.execute(select(ChannelListing.sku).where(
            ChannelListing.sku > after).distinct().order_by(ChannelListing.sku)
            .limit(limit + 1)).scalars()))[:limit + 1]
    return skus[:limit], len(skus) > limit


def describe_inventory(session: Session, skus: list[str],
                       rules: StockRules) -> list[dict[str, Any]]:
    """Per SKU: each supplier's feed quantity with its age and feed status, what orders
    reserve, and per channel what it may sell (by `rules` and the SKU's overrides) and what
    was last pushed there."""
    totals = feed_totals(session, skus)
    held = reserved(session, skus)
    levels: dict[str, list[dict[str, Any]]] = {}
    for level in session.execute(select(StockLevel).where(StockLevel.sku.in_(skus))).scalars():
        levels.setdefault(level.sku, []).append(
            {"supplier": level.supplier, "quantity": level.quantity,
             "as_of": level.as_of.isoformat(), "age_seconds": _age(level.as_of)})
    listings: dict[str, list[ChannelListing]] = {}
    for listing in session.execute(select(ChannelListing).where(
            ChannelListing.sku.in_(skus))).scalars():
        listings.setdefault(listing.sku, []).append(listing)
    feeds = {f.supplier: f.status for f in session.execute(select(StockFeed)).scalars()}
    items = []
    for sku in skus:
        channels = {}
        for listing in listings.get(sku, []):
            rule = layer_rules(rules.default, rules.per_channel.get(listing.channel),
                               _sku_rule(listing))
            computed = (listing.manual_quantity if listing.manual_quantity is not None
                        else available(totals.get(sku), held.get(sku, 0), rule))
            channels[listing.channel] = {
                "available": computed, "last_pushed": listing.last_pushed,
                "last_pushed_at": listing.last_pushed_at.isoformat()
                if listing.last_pushed_at else None,
                "listed": bool(listing.refs), "manual_quantity": listing.manual_quantity,
                "rule": {"buffer": rule.buffer, "percent": str(Decimal(rule.percent)),
                         "max": rule.max}}
        items.append({"sku": sku, "feed_total": totals.get(sku), "reserved": held.get(sku, 0),
                      "suppliers": [dict(level, feed_status=feeds.get(level["supplier"]))
                                    for level in levels.get(sku, [])],
                      "channels": channels})
    return items


def _age(at: datetime) -> float:
    return max(0.0, (utcnow() - at).total_seconds())
