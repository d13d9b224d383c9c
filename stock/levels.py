"""The stock numbers in the database: suppliers' feed quantities, what is reserved by orders,
the channel listings, and pushing changed quantities to a channel.

`push_changed` is shared by the timer's `stock sync` and by the `push_inventory` jobs queued
when an order is accepted, so the quantity a channel sees is computed one way only.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
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
# Pushed quantities are recorded (last_pushed, inventory_log) in one transaction per this many
# rows or seconds of pushing, not one per batch sent; see `push_changed`.
RECORD_ROWS = 10_000
RECORD_SECONDS = 2.0
IN_CHUNK = 500          # values in one SQL IN (...), well under SQLite's variable limit
WRITE_CHUNK = 2000      # rows per executemany, so a catalogue's rows are never all in memory
# Rows are fetched and turned into objects a chunk at a time, not all at once.
STREAM: Final = {"yield_per": 5000}


@dataclass(frozen=True)
class StockRules:
    """The availability rule's settings: global default, per channel (per SKU ones live on
    the channel listing)."""

    default: ChannelRule = field(default_factory=ChannelRule)
    per_channel: Mapping[str, RuleOverride] = field(default_factory=dict)


class KnownListing(NamedTuple):
    """A `channel_listings` row as pushing needs it: plain values rather than an ORM object
    (a channel may list hundreds of thousands of SKUs; a named tuple is also made in a fifth
    of a frozen dataclass's time). The row is (channel, sku); `item` and `location` are its
    refs' `inventory_item_id` and `location_id`, None while not known."""

    sku: str
    item: str | None
    location: str | None
    last_pushed: int | None
    buffer: int | None
    percent: int | None
    max_quantity: int | None
    manual_quantity: int | None


_KNOWN_COLUMNS = (ChannelListing.sku, ChannelListing.refs, ChannelListing.last_pushed,
                  ChannelListing.buffer, ChannelListing.percent, ChannelListing.max_quantity,
                  ChannelListing.manual_quantity)


def known_listings(session: Session, channel: str,
                   skus: Collection[str] | None = None) -> dict[str, KnownListing]:
    """The channel's listings by SKU: all of them, or those of `skus` (read IN_CHUNK at a
    time, so a sale's few SKUs do not load the whole catalogue)."""
    stmt = select(*_KNOWN_COLUMNS).where(ChannelListing.channel == channel)
    locations: dict[str, str] = {}   # one string per location, not one per SKU
    listings: dict[str, KnownListing] = {}

    def add(rows: Iterable[tuple[Any, ...]]) -> None:
        for sku, refs, *rest in rows:
            item = location = None
            if refs and refs.get("inventory_item_id") is not None:
                item = str(refs["inventory_item_id"])
                location = str(refs.get("location_id"))
                location = locations.setdefault(location, location)
            listings[sku] = KnownListing(sku, item, location, *rest)

    if skus is None:
        add(session.execute(stmt, execution_options=STREAM).tuples())
        return listings
    names = sorted(set(skus))
    for i in range(0, len(names), IN_CHUNK):
        add(session.execute(stmt.where(ChannelListing.sku.in_(names[i:i + IN_CHUNK]))).tuples())
    return listings


@dataclass
class PushReport:
    channel: str
    considered: int = 0
    changed: int = 0
    pushed: int = 0
    not_listed: int = 0
    errors: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)      # dry run: "SKU: before -> after"


def replace_levels(session: Session, supplier: str, totals: Mapping[str, int],
                   as_of: datetime, now: datetime) -> int:
    """Make `stock_levels` for `supplier` exactly `totals`; returns how many SKUs changed.
    Rows are found by (supplier, sku), the table's unique key, and written WRITE_CHUNK at a
    time."""
    existing = supplier_levels(session, supplier)
    table: Any = StockLevel.__table__
    new = [sku for sku in totals if sku not in existing]
    changed = [sku for sku, qty in totals.items() if sku in existing and existing[sku] != qty]
    gone = [sku for sku in existing if sku not in totals]
    for i in range(0, len(new), WRITE_CHUNK):
        session.execute(insert(table), [
            {"id": new_id(), "supplier": supplier, "sku": sku, "quantity": totals[sku],
             "as_of": as_of, "updated_at": now} for sku in new[i:i + WRITE_CHUNK]])
    for i in range(0, len(changed), WRITE_CHUNK):
        session.execute(update(table).where(table.c.supplier == supplier,
                                            table.c.sku == bindparam("_sku"))
                        .values(quantity=bindparam("_quantity"), as_of=bindparam("_as_of"),
                                updated_at=bindparam("_at")),
                        [{"_sku": sku, "_quantity": totals[sku], "_as_of": as_of, "_at": now}
                         for sku in changed[i:i + WRITE_CHUNK]])
    for i in range(0, len(gone), IN_CHUNK):
        session.execute(delete(table).where(table.c.supplier == supplier,
                                            table.c.sku.in_(gone[i:i + IN_CHUNK])))
    # The rows written above already have it (a first feed: all of them).
    session.execute(update(table).where(table.c.supplier == supplier, table.c.as_of != as_of)
                    .values(as_of=as_of))
    return len(new) + len(changed) + len(gone)


def supplier_levels(session: Session, supplier: str) -> dict[str, int]:
    return {sku: quantity for sku, quantity in session.execute(
        select(StockLevel.sku, StockLevel.quantity).where(StockLevel.supplier == supplier),
        execution_options=STREAM).tuples()}


def feed_totals(session: Session, skus: Collection[str] | None = None) -> dict[str, int]:
    """Σ over suppliers of the trusted feed quantity, per SKU."""
    stmt = select(StockLevel.sku, func.sum(StockLevel.quantity)).group_by(StockLevel.sku)
    if skus is not None:
        stmt = stmt.where(StockLevel.sku.in_(list(skus)))
    return {sku: int(total) for sku, total in session.execute(
        stmt, execution_options=STREAM).tuples()}


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
        listings = known_listings(session, channel, skus)
    wanted = sorted(set(skus) if skus is not None else set(totals) | set(listings))
    report.considered = len(wanted)
    quantity = _quantities(rules, channel, totals, held)
    located: list[KnownListing] = []
    unknown: list[str] = []
    for sku in wanted:
        listing = listings.get(sku)
        if listing is not None and listing.item:
            located.append(listing)
        else:
            unknown.append(sku)
    if dry_run:   # nothing is looked up: a SKU without a known item counts as not listed
        report.not_listed = len(unknown)
        for listing in located:
            after = quantity(listing)
            if after != listing.last_pushed:
                report.changed += 1
                before = "?" if listing.last_pushed is None else listing.last_pushed
                report.diff.append(f"{listing.sku}: {before} -> {after}")
        return report
    # The SKUs without a known item are looked up a batch at a time as the pushing goes
    # (a first sync looks up a whole catalogue), so that writing what was pushed, on a thread
    # of its own, overlaps with the calls to the channel: see `_Pushes`.
    pushes = _Pushes(db, channel, api, reason=reason, run=run, now=now, report=report)
    try:
        for listing in located:
            pushes.offer(listing, quantity(listing))
        for i in range(0, len(unknown), LOOKUP_BATCH):
            batch = unknown[i:i + LOOKUP_BATCH]
            found = api.lookup_listings(batch)
            pushes.learned.update(found)
            for sku in batch:
                if sku in found:
                    listing = _located(listings.get(sku), found[sku])
                    pushes.offer(listing, quantity(listing))
                else:
                    report.not_listed += 1
        pushes.send()   # the last batch, not full
    finally:
        pushes.close()
    return report


def _quantities(rules: StockRules, channel: str, totals: Mapping[str, int],
                held: Mapping[str, int]) -> Callable[[KnownListing], int]:
    """What `channel` may sell of a listing: its manual quantity, else the availability rule,
    with the listing's own settings (if any) over the channel's."""
    channel_rule = layer_rules(rules.default, rules.per_channel.get(channel))
    # Nearly every SKU has the channel's rule, and a catalogue has only a few thousand distinct
    # (feed total, reserved) pairs: the rule's Decimal arithmetic is done once for each.
    by_channel_rule = functools.cache(functools.partial(available, rule=channel_rule))

    def quantity(listing: KnownListing) -> int:
        if listing.manual_quantity is not None:
            return listing.manual_quantity
        total, waiting = totals.get(listing.sku), held.get(listing.sku, 0)
        own = _sku_rule(listing)
        if own is None:
            return by_channel_rule(total, waiting)
        return available(total, waiting, layer_rules(channel_rule, own))

    return quantity


class _Pushes:
    """Changed quantities on their way to one channel: sent PUSH_BATCH at a time, and what the
    channel applied recorded (last pushed, a log row each) together with the listings `learned`
    (looked up in this run), one transaction per RECORD_ROWS rows or RECORD_SECONDS of pushing
    rather than one per batch: a first sync sends hundreds of batches.

    Those transactions run on a thread of their own while the next batches are looked up and
    sent: in a first sync the writes take about as long as the calls to the channel, and this
    way the database mostly works while the channel answers. They are written one at a time and
    in order, at most one waits behind the one being written, and a write that failed stops the
    pushing. `close` waits for them and then writes what is left in the calling thread: the
    last group, and the listings found but not pushed (refused, or an error on the way).

    If the process dies before a group is written, the channel holds quantities not recorded
    as last pushed (and listings found are looked up again); the next run computes them again
    and sends them again: absolute quantities, so that is harmless, and a stale
    changeFromQuantity is answered with what the channel holds (counted as applied when it is
    already ours). An error raised by a batch still records what went before it."""

    def __init__(self, db: Database, channel: str, api: InventoryApi, *, reason: str, run: str,
                 now: datetime, report: PushReport) -> None:
        self.db, self.channel, self.api, self.report = db, channel, api, report
        self.reason, self.run, self.now = reason, run, now
        self.learned: dict[str, Listing] = {}
        self._queued: list[tuple[KnownListing, int]] = []
        self._unrecorded: list[tuple[KnownListing, int]] = []
        self._batches = 0
        self._since = time.monotonic()
        # Its thread starts with the first group handed over: a sale's few SKUs never need it.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stock-record")
        self._writing: list[Future[None]] = []

    def offer(self, listing: KnownListing, quantity: int) -> None:
        """Queue `quantity` when it is not what was last pushed; a full batch is sent."""
        if quantity == listing.last_pushed:
            return
        self.report.changed += 1
        self._queued.append((listing, quantity))
        if len(self._queued) >= PUSH_BATCH:
            self.send()

    def send(self) -> None:
        """Send what is queued as one batch; hand a group that is due to the writer."""
        if not self._queued:
            return
        batch, self._queued = self._queued, []
        key = f"{self.run}:{self.channel}:{self._batches}"
        self._batches += 1
        self._unrecorded += _push_batch(self.channel, self.api, batch, key, self.report)
        if (len(self._unrecorded) >= RECORD_ROWS
                or time.monotonic() - self._since >= RECORD_SECONDS):
            pushed, self._unrecorded = self._unrecorded, []
            self._since = time.monotonic()
            while self._writing and (self._writing[0].done() or len(self._writing) > 1):
                self._writing.pop(0).result()   # raises what that write raised
            self._writing.append(self._writer.submit(
                _record, self.db, self.channel, pushed, _take(self.learned, pushed),
                self.reason, self.run, self.now, self.report))

    def close(self) -> None:
        """Wait for the writer, write what is left, then raise what a write raised, if any."""
        self._writer.shutdown(wait=True)
        _record(self.db, self.channel, self._unrecorded, self.learned, self.reason, self.run,
                self.now, self.report)
        self._unrecorded, self.learned = [], {}
        for future in self._writing:
            future.result()


def _sku_rule(listing: ChannelListing | KnownListing) -> RuleOverride | None:
    """The listing's own settings, where an operator set them (the rest is inherited)."""
    if listing.buffer is None and listing.percent is None and listing.max_quantity is None:
        return None
    return RuleOverride(
        buffer=listing.buffer if listing.buffer is not None else INHERIT,
        percent=Decimal(listing.percent) if listing.percent is not None else INHERIT,
        max=listing.max_quantity if listing.max_quantity is not None else INHERIT)


def _located(known: KnownListing | None, found: Listing) -> KnownListing:
    """`known` (or a new listing) at the inventory item and location just looked up."""
    if known is None:
        return KnownListing(found.sku, found.inventory_item_id, found.location_id,
                            None, None, None, None, None)
    return known._replace(item=found.inventory_item_id, location=found.location_id)


def _take(learned: dict[str, Listing],
          pushed: list[tuple[KnownListing, int]]) -> dict[str, Listing]:
    """The listings of `pushed` that were looked up in this run, removed from `learned`."""
    return {listing.sku: learned.pop(listing.sku) for listing, _ in pushed
            if listing.sku in learned}


def _push_batch(channel: str, api: InventoryApi, batch: list[tuple[KnownListing, int]],
                key: str, report: PushReport) -> list[tuple[KnownListing, int]]:
    """Send one batch; returns the (listing, quantity) pairs the channel applied."""
    changes = [QuantityChange(Listing(listing.sku, str(listing.item), str(listing.location)),
                              quantity, listing.last_pushed) for listing, quantity in batch]
    try:
        result = api.set_quantities(changes, reason="correction", reference=None,
                                    idempotency_key=key)
    except ChannelApiError as exc:
        report.errors.append(str(exc))
        log.error("stock push to %s failed: %s", channel, exc)
        if exc.retryable:
            raise
        return []
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
    return [(listing, quantity) for listing, quantity in batch if listing.sku in applied]


def _record(db: Database, channel: str, pushed: list[tuple[KnownListing, int]],
            learned: Mapping[str, Listing], reason: str, run: str, now: datetime,
            report: PushReport) -> None:
    """One transaction: the listings `learned` (looked up in this run) as rows, new ones added
    and others given their refs; the quantities `pushed` as last pushed, and a log row each."""
    if not pushed and not learned:
        return
    listings: Any = ChannelListing.__table__
    entries: Any = InventoryLog.__table__
    quantities = {listing.sku: quantity for listing, quantity in pushed}
    names = sorted(learned)
    with db.session() as session:
        existing: set[str] = set()   # read in the write transaction: a sale's job may have
        for i in range(0, len(names), IN_CHUNK):   # added a row since
            existing.update(session.execute(select(ChannelListing.sku).where(
                ChannelListing.channel == channel,
                ChannelListing.sku.in_(names[i:i + IN_CHUNK]))).scalars())
        new = [sku for sku in names if sku not in existing]
        known = [sku for sku in names if sku in existing]
        for i in range(0, len(new), WRITE_CHUNK):
            session.execute(insert(listings), [
                {"id": new_id(), "channel": channel, "sku": sku, "refs": _refs(learned[sku]),
                 "last_pushed": quantities.get(sku),
                 "last_pushed_at": now if sku in quantities else None, "updated_at": now}
                for sku in new[i:i + WRITE_CHUNK]])
        for i in range(0, len(known), WRITE_CHUNK):
            session.execute(update(listings).where(
                listings.c.channel == channel, listings.c.sku == bindparam("_sku")).values(
                refs=bindparam("_refs"), updated_at=bindparam("_at")),
                [{"_sku": sku, "_refs": _refs(learned[sku]), "_at": now}
                 for sku in known[i:i + WRITE_CHUNK]])
        added = set(new)
        kept = [(sku, quantity) for sku, quantity in quantities.items() if sku not in added]
        for i in range(0, len(kept), WRITE_CHUNK):
            session.execute(update(listings).where(
                listings.c.channel == channel, listings.c.sku == bindparam("_sku")).values(
                last_pushed=bindparam("_quantity"), last_pushed_at=bindparam("_at"),
                updated_at=bindparam("_at")),
                [{"_sku": sku, "_quantity": quantity, "_at": now}
                 for sku, quantity in kept[i:i + WRITE_CHUNK]])
        for i in range(0, len(pushed), WRITE_CHUNK):
            session.execute(insert(entries), [
                {"id": new_id(), "sku": listing.sku, "channel": channel,
                 "before": listing.last_pushed, "after": quantity, "reason": reason,
                 "run": run, "at": now} for listing, quantity in pushed[i:i + WRITE_CHUNK]])
        session.commit()
    report.pushed += len(pushed)
    STOCK_PUSHES.labels(channel, reason).inc(len(pushed))


def _refs(listing: Listing) -> dict[str, str]:
    return {"inventory_item_id": listing.inventory_item_id, "location_id": listing.location_id}


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
