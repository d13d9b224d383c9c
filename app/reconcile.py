"""`orders sync`: find the orders whose webhooks never arrived, by reading the channel's API.

Pages through the orders updated since the last successful run (minus an overlap window, so an
order updated while the last run was paging is not missed) and runs each through the same
intake path as a webhook: stored once (the delivery id is `sync:<order id>:<updated_at>`, so the
same version read twice is a duplicate), and never applied over a newer version. Each order is
its own transaction: one bad order does not lose the others. Every run is kept in `sync_runs`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.channels.base import Channel, ChannelApi, ChannelApiError, Delivery
from app.db import Database
from app.errors import PayloadInvalid
from app.intake import Outcome, receive_delivery
from app.models import Order, SyncRun
from app.purchasing import Purchasing

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(hours=2)
FIRST_RUN_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class SyncTarget:
    channel: Channel
    api: ChannelApi
    account: str          # e.g. the shop domain the orders belong to


def sync_since(db: Database, channel: str, *, now: datetime,
               overlap: timedelta = DEFAULT_OVERLAP) -> datetime:
    """Where a run starts when not told: the last good run's start minus the overlap."""
    with db.read_session() as session:
        last = session.execute(select(SyncRun.started_at).where(
            SyncRun.channel == channel, SyncRun.status == "ok")
            .order_by(SyncRun.started_at.desc()).limit(1)).scalar_one_or_none()
    return (last - overlap) if last is not None else (now - FIRST_RUN_WINDOW)


def _before_our_time(channel: Channel, raw_body: bytes, since: datetime) -> bool:
    """An order OrderHub never saw that was placed before the window, or that the channel
    already fulfilled, is history (a tag or a refund touched it): taking it in would send
    its purchase orders to suppliers again."""
    try:
        order = channel.parse_order(json.loads(raw_body))
    except (PayloadInvalid, ValueError):
        return False   # let the intake quarantine it, with the reason
    if order.placed_at < since or order.fulfillment_status == "fulfilled":
        log.info("orders sync: order %s (placed %s, %s) is older than OrderHub's window; "
                 "not taken in", order.number, order.placed_at.isoformat(timespec="minutes"),
                 order.fulfillment_status or "unfulfilled")
        return True
    return False


def sync_orders(db: Database, target: SyncTarget, *, purchasing: Purchasing, since: datetime,
                now: datetime) -> SyncRun:
    """Read every order updated since `since` and take in what OrderHub does not have."""
    name = target.channel.name
    with db.session() as session:
        run = SyncRun(channel=name, status="running", since=since, started_at=now)
        session.add(run)
        session.commit()
    counts = {"fetched": 0, "created": 0, "updated": 0, "unchanged": 0, "quarantined": 0}
    error: str | None = None
    try:
        for fetched in target.api.orders_updated_since(since):
            counts["fetched"] += 1
            delivery = Delivery(channel=name, account=target.account, topic="orders/updated",
                                delivery_id=f"sync:{fetched.external_id}:"
                                            f"{fetched.updated_at.isoformat()}")
            with db.session() as session:
                stored = session.execute(select(Order.source_updated_at).where(
                    Order.channel == name, Order.account == target.account,
                    Order.external_id == fetched.external_id)).first()
                known = stored is not None
                if stored is not None and stored.source_updated_at >= fetched.updated_at:
                    counts["unchanged"] += 1   # we have this version, or a newer one
                    continue
                if not known and _before_our_time(target.channel, fetched.raw_body, since):
                    counts["unchanged"] += 1
                    continue
                result = receive_delivery(session, channel=target.channel, delivery=delivery,
                                          raw_body=fetched.raw_body, purchasing=purchasing)
                session.commit()
            if result.outcome is Outcome.PROCESSED:
                counts["updated" if known else "created"] += 1
            elif result.outcome is Outcome.QUARANTINED:
                counts["quarantined"] += 1
            else:
                counts["unchanged"] += 1
    except ChannelApiError as exc:
        error = str(exc)
        log.error("orders sync of %s stopped: %s", name, exc)
    with db.session() as session:
        record = session.get(SyncRun, run.id)
        assert record is not None
        for key, value in counts.items():
            setattr(record, key, value)
        record.status = "failed" if error else "ok"
        record.error = error
        record.until = now
        record.finished_at = datetime.now(now.tzinfo)
        session.commit()
        session.refresh(record)
        session.expunge(record)
    log.info("orders sync of %s since %s: %d read, %d new, %d updated, %d unchanged, "
             "%d quarantined%s", name, since.isoformat(timespec="seconds"), counts["fetched"],
             counts["created"], counts["updated"], counts["unchanged"], counts["quarantined"],
             f"; failed: {error}" if error else "")
    return record
