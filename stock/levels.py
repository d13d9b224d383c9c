"""The stock numbers in the database: suppliers' feed quantities, what is reserved by orders,
the channel listings, and pushing changed quantities to a channel.

`push_changed` is shared by the timer's `stock sync` and by the `push_inventory` jobs queued
when an order is accepted, so the quantity a channel sees is computed one way only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.channels.base import ChannelApiError, InventoryApi, Listing, QuantityChange
from app.db import Database
from app.metrics import STOCK_PUSHES
from app.models import (
    ChannelListing,
    InventoryLog,
    LineRouting,
    Order,
    OrderLine,
    StockLevel,
)
from app.types import new_id
from stock.availability import INHERIT, ChannelRule, RuleOverride, available, layer_rules

log = logging.getLogger(__name__)

LOOKUP_BATCH = 250
PUSH_BATCH = 250


@dataclass(frozen=True)
class StockRules:
    """The availability rule's settings: global default, per channel (per SKU ones live on
    the channel listing)."""

    default: ChannelRule = field(default_factory=ChannelRule)
    per_channel: Mapping[str, RuleOverride] = field(default_factory=dict)


@dataclass
class PushReport:
    channel: str
    considered: int = 0
    changed: int = 0
    pushed: int = 0
    not_listed: int = 0
    errors: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)      # "SKU: before -> after"


def replace_levels(session: Session, supplier: str, totals: Mapping[str, int],
                   as_of: datetime, now: datetime) -> int:
    """Make `stock_levels` for `supplier` exactly `totals`; returns how many SKUs changed."""
    existing = {row.sku: (row.id, row.quantity) for row in session.execute(
        select(StockLevel.id, StockLevel.sku, StockLevel.quantity)
        .where(StockLevel.supplier == supplier))}
    inserts = [{"id": new_id(), "supplier": supplier, "sku": sku, "quantity": qty,
                "as_of": as_of, "updated_at": now}
               for sku, qty in totals.items() if sku not in existing]
    updates = [{"_id": existing[sku][0], "quantity": qty, "as_of": as_of, "updated_at": now}
               for sku, qty in totals.items()
               if sku in existing and existing[sku][1] != qty]
    gone = [row_id for sku, (row_id, _) in existing.items() if sku not in totals]
    table: Any = StockLevel.__table__
    if inserts:
        session.execute(insert(table), inserts)
    if updates:
        from sqlalchemy import bindparam

        session.execute(update(table).where(table.c.id == bindparam("_id"))
                        .values(quantity=bindparam("quantity"), as_of=bindparam("as_of"),
                                updated_at=bindparam("updated_at")), updates)
    if gone:
        for i in range(0, len(gone), 500):
            session.execute(delete(table).where(table.c.id.in_(gone[i:i + 500])))
    session.execute(update(table).where(table.c.supplier == supplier)
                    .values(as_of=as_of))
    return len(inserts) + len(updates) + len(gone)


def supplier_levels(session: Session, supplier: str) -> dict[str, int]:
    return dict(session.execute(select(StockLevel.sku, StockLevel.quantity)
                                .where(StockLevel.supplier == supplier)).tuples().all())


def feed_totals(session: Session, skus: Collection[str] | None = None) -> dict[str, int]:
    """Σ over suppliers of the trusted feed quantity, per SKU."""
    stmt = select(StockLevel.sku, func.sum(StockLevel.quantity)).group_by(StockLevel.sku)
    if skus is not None:
        stmt = stmt.where(StockLevel.sku.in_(list(skus)))
    return {sku: int(total) for sku, total in session.execute(stmt).tuples()}


def reserved(session: Session, skus: Collection[str] | None = None) -> dict[str, int]:
    """Per SKU: what routed orders still wait for (ordered, not yet shipped by the supplier)."""
    open_qty = OrderLine.quantity - OrderLine.shipped_quantity
    stmt = (select(OrderLine.sku, func.sum(open_qty))
            .join(Order, Order.id == OrderLine.order_id)
            .where(and_(OrderLine.routing == LineRouting.ROUTED, OrderLine.sku.is_not(None),
                        Order.cancelled_at.is_(None), open_qty > 0))
            .group_by(OrderLine.sku))
    if skus is not None:
        stmt = stmt.where(OrderLine.sku.in_(list(skus)))
    return {sku: int(total) for sku, total in session.execute(stmt).tuples() if sku}


def push_changed(db: Database, *, channel: str, api: InventoryApi, rules: StockRules,
                 skus: Collection[str] | None, reason: str, run: str, now: datetime,
                 dry_run: bool = False, totals: Mapping[str, int] | None = None) -> PushReport:
    """Compute what `channel` may sell of `skus` (None: every SKU with stock or a listing)
    and push only what differs from the last quantity pushed. Calls to the channel happen
    outside any database transaction."""
    report = PushReport(channel)
    with db.read_session() as session:
        if totals is None:
            totals = feed_totals(session, skus)
        held = reserved(session, skus)
        listings = {row.sku: row for row in session.execute(
            select(ChannelListing).where(ChannelListing.channel == channel)).scalars()
            if skus is None or row.sku in skus}
    wanted = set(skus) if skus is not None else set(totals) | set(listings)
    report.considered = len(wanted)
    unknown = sorted(sku for sku in wanted if sku not in listings or not listings[sku].refs)
    if unknown and not dry_run:
        _lookup(db, channel, api, unknown, listings, now)
    changes: list[tuple[ChannelListing, int]] = []
    for sku in sorted(wanted):
        listing = listings.get(sku)
        if listing is None or not listing.refs:
            report.not_listed += 1
            continue
        rule = layer_rules(rules.default, rules.per_channel.get(channel), _sku_rule(listing))
        quantity = (listing.manual_quantity if listing.manual_quantity is not None
                    else available(totals.get(sku), held.get(sku, 0), rule))
        if quantity != listing.last_pushed:
            changes.append((listing, quantity))
            before = "?" if listing.last_pushed is None else listing.last_pushed
            report.diff.append(f"{sku}: {before} -> {quantity}")
    report.changed = len(changes)
    if dry_run or not changes:
        return report
    for i in range(0, len(changes), PUSH_BATCH):
        batch = changes[i:i + PUSH_BATCH]
        _push_batch(db, channel, api, batch, reason, run, f"{run}:{channel}:{i // PUSH_BATCH}",
                    now, report)
    return report


def _sku_rule(listing: ChannelListing) -> RuleOverride | None:
    """The listing's own settings, where an operator set them (the rest is inherited)."""
    if listing.buffer is None and listing.percent is None and listing.max_quantity is None:
        return None
    return RuleOverride(
        buffer=listing.buffer if listing.buffer is not None else INHERIT,
        percent=Decimal(listing.percent) if listing.percent is not None else INHERIT,
        max=listing.max_quantity if listing.max_quantity is not None else INHERIT)


def _lookup(db: Database, channel: str, api: InventoryApi, skus: list[str],
            listings: dict[str, ChannelListing], now: datetime) -> None:
    found: dict[str, Listing] = {}
    for i in range(0, len(skus), LOOKUP_BATCH):
        found.update(api.lookup_listings(skus[i:i + LOOKUP_BATCH]))
    if not found:
        return
    with db.session() as session:
        for sku, listing in found.items():
            refs = {"inventory_item_id": listing.inventory_item_id,
                    "location_id": listing.location_id}
            row = session.execute(select(ChannelListing).where(
                ChannelListing.channel == channel, ChannelListing.sku == sku)).scalar_one_or_none()
            if row is None:
                row = ChannelListing(id=new_id(), channel=channel, sku=sku, refs=refs,
                                     updated_at=now)
                session.add(row)
            else:
                row.refs = refs
        session.commit()
        for row in session.execute(select(ChannelListing).where(
                ChannelListing.channel == channel,
                ChannelListing.sku.in_(list(found)))).scalars():
            session.expunge(row)
            listings[row.sku] = row


def _push_batch(db: Database, channel: str, api: InventoryApi,
                batch: list[tuple[ChannelListing, int]], reason: str, run: str, key: str,
                now: datetime, report: PushReport) -> None:
    changes = [QuantityChange(Listing(listing.sku, str((listing.refs or {})["inventory_item_id"]),
                                      str((listing.refs or {})["location_id"])), quantity,
                              listing.last_pushed) for listing, quantity in batch]
    try:
        result = api.set_quantities(changes, reason="correction", reference=None,
                                    idempotency_key=key)
    except ChannelApiError as exc:
        report.errors.append(str(exc))
        log.error("stock push to %s failed: %s", channel, exc)
        if exc.retryable:
            raise
        return
    # Someone changed the quantity on the channel since our last push: set ours again,
    # comparing with what the channel really has now.
    again = [QuantityChange(c.listing, c.quantity, actual) for c in changes
             for sku, actual in result.mismatched if sku == c.listing.sku]
    applied = set(result.applied)
    if again:
        retry = api.set_quantities(again, reason="correction", reference=None,
                                   idempotency_key=f"{key}:again")
        applied |= set(retry.applied)
        report.errors.extend(retry.errors)
    report.errors.extend(result.errors)
    pushed = [(listing, quantity) for listing, quantity in batch if listing.sku in applied]
    with db.session() as session:
        for listing, quantity in pushed:
            session.execute(update(ChannelListing).where(ChannelListing.id == listing.id)
                            .values(last_pushed=quantity, last_pushed_at=now, updated_at=now))
        if pushed:
            session.execute(insert(InventoryLog), [
                {"id": new_id(), "sku": listing.sku, "channel": channel,
                 "before": listing.last_pushed, "after": quantity, "reason": reason,
                 "run": run, "at": now} for listing, quantity in pushed])
        session.commit()
    report.pushed += len(pushed)
    STOCK_PUSHES.labels(channel, reason).inc(len(pushed))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def skus_of(lines: Iterable[tuple[str | None, Any]]) -> list[str]:
    return sorted({sku for sku, _ in lines if sku})
