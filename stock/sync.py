"""`stock sync`: read every supplier's stock feed, keep what can be trusted, and push the
quantities that changed to every channel.

Per supplier with `stock_feed`: the file is streamed from its server into a temporary file and
parsed as a stream (a million-line feed never sits in memory), bad rows are counted and reported
with line numbers. Then the guards: a feed older than `max_feed_age` is not trusted (its SKUs
keep their last good value, or drop to zero with `stale_action = "zero"`), and a feed that would
drop total stock by more than half or send more than a quarter of the SKUs to zero is held for
an operator (`stock sync --accept-feed NAME`). Both raise an alert once. Trusted feeds replace
that supplier's levels; then each channel gets the quantities that differ from its last push.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.alerts import AlertSink
from app.channels.base import InventoryApi
from app.db import Database
from app.models import SkuMapEntry, StockFeed
from app.suppliers import Supplier, SupplierBook
from app.transports import Transport, TransportError
from stock.feeds import FeedColumns, FeedInvalid, FeedProblems, read_feed
from stock.guards import drop_guard, is_stale
from stock.levels import (
    PushReport,
    StockRules,
    feed_totals,
    new_run_id,
    push_changed,
    replace_levels,
    supplier_levels,
)

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 2 * 1024 * 1024 * 1024
DEFAULT_MAX_FEED_AGE = timedelta(hours=48)
YOUNG_OBJECTS = 100_000   # new objects between two garbage collections during a sync

FolderTransports = Callable[[Supplier, str | None], Transport]


@dataclass
class FeedReport:
    supplier: str
    status: str                  # ok | unchanged | held | stale | failed | dry-run
    skus: int = 0
    rows: int = 0
    bad_rows: int = 0
    changed: int = 0
    reason: str | None = None
    problems: list[str] = field(default_factory=list)
    would_be: dict[str, int] | None = None   # a dry run's totals, applied nowhere


@dataclass
class StockRun:
    run: str
    feeds: list[FeedReport] = field(default_factory=list)
    pushes: list[PushReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return (any(f.status in ("failed", "held", "stale") for f in self.feeds)
                or any(p.errors for p in self.pushes))

    def summary(self) -> str:
        read = sum(f.skus for f in self.feeds)
        bad = sum(f.bad_rows for f in self.feeds)
        held = [f"{f.supplier} {f.status}" for f in self.feeds
                if f.status in ("held", "stale", "failed")]
        pushed = ", ".join(f"{p.channel} {p.pushed}/{p.changed}" for p in self.pushes) or "none"
        skipped = sum(p.not_listed for p in self.pushes)
        errors = sum(len(p.errors) for p in self.pushes)
        return (f"stock sync {self.run}: {read} SKU(s) read from {len(self.feeds)} feed(s), "
                f"{bad} bad row(s); pushed (of changed) per channel: {pushed}; {skipped} "
                f"not listed; {errors} push error(s)"
                + (f"; {', '.join(held)}" if held else "") + f"; {self.seconds:.1f} s")


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a sync works. A sync keeps a
    catalogue's worth of objects alive (levels, listings, what the channel answered), and with
    the default threshold (a collection every 700 new objects) the full collections that
    follow walk all of them again and again: 6 of the 32 s of a first sync in the stock bench.
    Every YOUNG_OBJECTS new objects instead, it is under half a second. Objects are still
    freed by reference counting as they go; only reference cycles wait a little longer."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], YOUNG_OBJECTS), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


@_fewer_collections()
def sync_stock(*, db: Database, book: SupplierBook, folders: FolderTransports,
               apis: Mapping[str, InventoryApi], rules: StockRules, alerts: AlertSink,
               now: Callable[[], datetime], dry_run: bool = False, only: str | None = None,
               accept_feed: str | None = None,
               progress: Callable[[str], None] | None = None) -> StockRun:
    """One reconcile of stock: read the feeds, then push what changed (see the module doc)."""
    started = time.monotonic()
    run = StockRun(run=new_run_id())
    for supplier in book.suppliers:
        if not supplier.stock_feed or (only is not None and supplier.key != only):
            continue
        if progress:
            progress(f"feed {supplier.key}")
        report = _read_supplier(db, supplier, folders, alerts, now(), dry_run=dry_run,
                                accept=accept_feed == supplier.key)
        run.feeds.append(report)
    if dry_run:
        totals = _would_be(db, run.feeds)
    else:   # read once for every channel: only a sync writes stock levels
        with db.read_session() as session:
            totals = feed_totals(session)
    for channel, api in apis.items():
        if progress:
            progress(f"push {channel}")
        run.pushes.append(push_changed(db, channel=channel, api=api, rules=rules, skus=None,
                                       reason="stock sync", run=run.run, now=now(),
                                       dry_run=dry_run, totals=totals))
    run.seconds = time.monotonic() - started
    log.info("%s", run.summary())
    return run


def _read_supplier(db: Database, supplier: Supplier, folders: FolderTransports,
                   alerts: AlertSink, now: datetime, *, dry_run: bool,
                   accept: bool) -> FeedReport:
    assert supplier.stock_feed is not None
    folder, name = posixpath.split(supplier.stock_feed)
    report = FeedReport(supplier.key, "ok")
    problems = FeedProblems()
    with tempfile.TemporaryFile(prefix="orderhub-feed-") as spool:
        try:
            with folders(supplier, folder or None) as transport:
                feed_time = transport.modified(name)
                transport.download_to(name, spool, max_bytes=MAX_FEED_BYTES)
        except TransportError as exc:
            return _failed(db, supplier, alerts, now, f"cannot read {supplier.stock_feed}: {exc}",
                           report, dry_run)
        spool.seek(0)
        digest = hashlib.sha256()
        totals: dict[str, int] = {}
        with db.read_session() as session:   # the feed names the supplier's own SKUs
            ours = dict(session.execute(select(SkuMapEntry.supplier_sku, SkuMapEntry.sku).where(
                SkuMapEntry.supplier == supplier.key,
                SkuMapEntry.supplier_sku.is_not(None))).tuples().all())
        try:
            for row in read_feed(_Hashing(spool, digest), name=name,
                                 columns=FeedColumns(**dict(supplier.stock_columns)),
                                 problems=problems):
                report.rows += 1
                sku = row.our_sku or ours.get(row.sku) or row.sku
                totals[sku] = totals.get(sku, 0) + row.quantity
        except FeedInvalid as exc:
            return _failed(db, supplier, alerts, now, str(exc), report, dry_run)
    report.skus = len(totals)
    report.bad_rows = problems.bad_rows
    report.problems = list(problems.first)
    as_of = problems.as_of or feed_time or now
    max_age = (timedelta(seconds=supplier.max_feed_age_seconds)
               if supplier.max_feed_age_seconds else DEFAULT_MAX_FEED_AGE)
    if is_stale(as_of, now, max_age):
        reason = (f"the feed is from {as_of.isoformat(timespec='minutes')}, older than "
                  f"{max_age}: not trusted"
                  + ("; its SKUs are set to zero" if supplier.stale_action == "zero"
                     else "; its SKUs keep their last good quantities"))
        report.status, report.reason = "stale", reason
        if not dry_run:
            _note(db, supplier, alerts, now, "stale", reason, as_of, digest.hexdigest(),
                  report, zero=supplier.stale_action == "zero")
        return report
    with db.read_session() as session:
        previous = supplier_levels(session, supplier.key)
    for sku in problems.bad_skus:   # a row we could not read keeps its last good quantity
        mapped = ours.get(sku, sku)
        if mapped not in totals and mapped in previous:
            totals[mapped] = previous[mapped]
    verdict = drop_guard(previous, totals, max_total_drop=supplier.max_total_drop,
                         max_zero_flip=supplier.max_zero_flip)
    if verdict.held and not accept:
        report.status, report.reason = "held", verdict.reason
        if not dry_run:
            _note(db, supplier, alerts, now, "held", f"{verdict.reason}; check it, then run "
                  f"`flask --app wsgi stock sync --accept-feed {supplier.key}`", as_of,
                  digest.hexdigest(), report)
        return report
    if dry_run:
        report.status, report.would_be = "dry-run", totals
        report.changed = sum(1 for sku, q in totals.items() if previous.get(sku) != q) + sum(
            1 for sku in previous if sku not in totals)
        return report
    with db.session() as session:
        report.changed = replace_levels(session, supplier.key, totals, as_of, now)
        _state(session, supplier.key, "ok", None, as_of, now, digest.hexdigest(), report)
        session.commit()
    return report


def _would_be(db: Database, feeds: list[FeedReport]) -> dict[str, int]:
    """The feed totals per SKU if this dry run's feeds were applied."""
    with db.read_session() as session:
        combined = feed_totals(session)
        for feed in feeds:
            if feed.would_be is None:
                continue
            for sku, quantity in supplier_levels(session, feed.supplier).items():
                combined[sku] = combined.get(sku, 0) - quantity
            for sku, quantity in feed.would_be.items():
                combined[sku] = combined.get(sku, 0) + quantity
    return combined


class _Hashing:
    """A binary stream that hashes what is read through it."""

    def __init__(self, raw: BinaryIO, digest: hashlib._Hash) -> None:
        self.raw, self.digest = raw, digest

    def read(self, size: int = -1, /) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


def _failed(db: Database, supplier: Supplier, alerts: AlertSink, now: datetime, reason: str,
            report: FeedReport, dry_run: bool) -> FeedReport:
    report.status, report.reason = "failed", reason
    if not dry_run:
        _note(db, supplier, alerts, now, "failed", reason, None, None, report)
    return report


def _note(db: Database, supplier: Supplier, alerts: AlertSink, now: datetime, status: str,
          reason: str, feed_at: datetime | None, sha: str | None, report: FeedReport, *,
          zero: bool = False) -> None:
    """Record a feed that is not trusted; alert when its state (or the file) is new."""
    with db.session() as session:
        state = session.get(StockFeed, supplier.key)
        new = state is None or state.status != status or state.sha256 != sha
        if zero:
            replace_levels(session, supplier.key,
                           dict.fromkeys(supplier_levels(session, supplier.key), 0), now, now)
        _state(session, supplier.key, status, reason, feed_at, now, sha, report)
        session.commit()
    if new:
        alerts.alert(f"stock feed of {supplier.key} {status}", f"Supplier: {supplier.key}\n"
                     f"Feed: {supplier.stock_feed}\n{reason}", kind=f"stock_feed_{status}",
                     ref=supplier.key)


def _state(session: Session, supplier: str, status: str, reason: str | None,
           feed_at: datetime | None, now: datetime, sha: str | None,
           report: FeedReport) -> None:
    state = session.get(StockFeed, supplier) or StockFeed(supplier=supplier)
    state.status, state.reason, state.read_at, state.sha256 = status, reason, now, sha
    if feed_at is not None:
        state.feed_at = feed_at
    state.skus, state.bad_rows = report.skus, report.bad_rows
    state.total = 0
    session.add(state)
