"""Gauges read from the database when Prometheus scrapes `/metrics`, so they are right whichever
process answers: the outbox per job kind (waiting, in progress, dead, and how long the oldest due
job has waited), quarantined inbound files, and orders that need a person.

A few statements per scrape, each served by an index: the outbox's (status, next_attempt_at),
inbound_files' (status, received_at) with orders' (status), and webhook_events' (status,
received_at) for the deliveries waiting to be applied. Done jobs and applied files, the bulk
of both tables, are never read. A database that does not answer makes `orderhub_database_up` 0
rather than failing the scrape, so the process metrics still arrive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import CompoundSelect, String, cast, func, literal, null, select, union_all
from sqlalchemy.exc import SQLAlchemyError

from app import outbox
from app.db import Database
from app.models import InboundFile, JobKind, JobStatus, Order, OrderStatus, StockFeed
from app.queries import pending_deliveries
from app.types import utcnow

log = logging.getLogger(__name__)

KINDS = tuple(sorted(v for k, v in vars(JobKind).items() if k.isupper()))  # every kind there is
OPEN = (JobStatus.PENDING, JobStatus.RUNNING)


class DatabaseGauges(Collector):
    """The database's state as gauges; reads it on every `collect()` (a scrape)."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("orderhub_database_up",
                               "1 when the database answered this scrape's queries, else 0 "
                               "(and the database gauges are missing).")
        try:
            with self.db.read_session() as session:
                jobs = outbox.depth(session, now=self.clock())
                counts = session.execute(_counts()).all()
                feeds = session.execute(select(StockFeed.supplier, StockFeed.status,
                                               StockFeed.feed_at)).all()
                waiting, oldest_waiting = pending_deliveries(session)
        except SQLAlchemyError as exc:
            log.error("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _outbox(jobs)

        quarantined = GaugeMetricFamily(
            "orderhub_inbound_files_quarantined",
            "Files from suppliers (acknowledgements, shipment notices) kept but not applied, "
            "by supplier and kind; each raised an alert and waits for a person.",
            labels=["supplier", "kind"])
        attention = GaugeMetricFamily(
            "orderhub_orders_needing_attention",
            "Orders with a line no supplier takes, or a purchase order that could not be sent.")
        needing_attention = 0
        for what, supplier, kind, count in counts:
            if what == "orders":
                needing_attention = count
            else:
                quarantined.add_metric([supplier, kind], count)
        attention.add_metric([], needing_attention)
        yield quarantined
        yield attention

        now = self.clock()
        pending = GaugeMetricFamily(
            "orderhub_webhook_deliveries_pending",
            "Webhook deliveries acknowledged and not applied yet (the dispatcher applies them "
            "within a second; a growing number means it is not running or falls behind).")
        pending.add_metric([], waiting)
        yield pending
        pending_age = GaugeMetricFamily(
            "orderhub_webhook_deliveries_oldest_pending_seconds",
            "Seconds the oldest pending webhook delivery has waited (0 when none waits).")
        pending_age.add_metric([], max(0.0, (now - oldest_waiting).total_seconds())
                               if oldest_waiting else 0.0)
        yield pending_age

        age = GaugeMetricFamily(
            "orderhub_stock_feed_age_seconds",
            "Age of each supplier's last stock feed (its as_of, else the file's time), with "
            "the feed's state: ok, held (for an operator), stale or failed.",
            labels=["supplier", "status"])
        for supplier, status, feed_at in feeds:
            if feed_at is not None:
                age.add_metric([supplier, status], max(0.0, (now - feed_at).total_seconds()))
        yield age


def _outbox(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "orderhub_outbox_depth",
        "Outbox jobs waiting (pending: due now or scheduled for a retry) or in progress "
        "(running), by kind and status.", labels=["kind", "status"])
    oldest = GaugeMetricFamily(
        "orderhub_outbox_oldest_due_seconds",
        "Seconds since the longest-waiting due job of this kind and status became due "
        "(0 when none is due).", labels=["kind", "status"])
    dead = GaugeMetricFamily(
        "orderhub_outbox_dead_jobs",
        "Outbox jobs given up on (each raised an alert), by kind, until resent.",
        labels=["kind"])
    found = {(str(r["kind"]), str(r["status"])): r for r in rows}
    kinds = sorted(set(KINDS) | {kind for kind, _ in found})
    for kind in kinds:  # every known kind, so a rule sees 0 rather than nothing
        for status in OPEN:
            row = found.get((kind, status))
            depth.add_metric([kind, status], float(row["count"]) if row else 0.0)
            seconds = row["oldest_due_seconds"] if row else None
            oldest.add_metric([kind, status], float(seconds) if seconds else 0.0)
        row = found.get((kind, JobStatus.DEAD))
        dead.add_metric([kind], float(row["count"]) if row else 0.0)
    yield depth
    yield oldest
    yield dead


def _counts() -> CompoundSelect[tuple[str, str | None, str | None, int]]:
    """Quarantined inbound files per supplier and kind, and orders needing attention, in one
    statement."""
    files = (select(literal("inbound_files"), InboundFile.supplier, InboundFile.kind,
                    func.count())
             .where(InboundFile.status == "quarantined")
             .group_by(InboundFile.supplier, InboundFile.kind))
    orders = (select(literal("orders"), cast(null(), String), cast(null(), String),
                     func.count())
              .where(Order.status == OrderStatus.NEEDS_ATTENTION))
    return union_all(files, orders)
