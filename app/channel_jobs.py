"""The dispatcher's jobs on a sales channel's API, each lane its own thread and breaker:
fulfillments to push (`channel:<name>`), stock to push (`channel:<name>:stock`), orders syncs
asked for through the API (`channel:<name>:sync`), and stock syncs (`stock:sync`).

A mixin of `Dispatcher` (app/dispatch.py), which owns the loop, the leases and the alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app import outbox
from app.alerts import AlertSink
from app.breaker import CircuitBreaker
from app.channels.base import ChannelApi, ChannelApiError
from app.db import Database
from app.logs import bind
from app.metrics import DISPATCH_JOBS
from app.models import JobKind
from app.outbox import Job, RetryPolicy
from app.purchasing import Purchasing
from app.reconcile import SyncTarget, sync_orders, sync_since
from app.suppliers import Supplier, SupplierBook
from app.transports import Transport
from stock.levels import StockRules

if TYPE_CHECKING:
    import threading

    from app.dispatch import RunStats

log = logging.getLogger("app.dispatch")

# Lanes of channel jobs: "channel:shopify" (fulfillments), "channel:shopify:stock",
# "channel:shopify:sync" — each its own thread and circuit breaker, so a long orders sync or a
# stock push never holds up fulfillments.
CHANNEL_LANE = "channel:"
STOCK_LANE = "stock:sync"   # `stock sync` runs asked for through the API


def _channel_of(lane: str) -> str:
    """"channel:shopify", "channel:shopify:stock" -> "shopify"."""
    return lane.removeprefix(CHANNEL_LANE).split(":")[0]


class ChannelJobs:
    """What `Dispatcher` provides to these jobs."""

    db: Database
    purchasing: Purchasing
    book: SupplierBook
    policy: RetryPolicy
    alerts: AlertSink
    breaker: CircuitBreaker
    owner: str
    batch: int
    clock: Callable[[], datetime]
    apis: Mapping[str, ChannelApi]
    sync_targets: Mapping[str, SyncTarget]
    sync_overlap: timedelta
    stock_rules: StockRules | None
    folders: Callable[[Supplier, str | None], Transport] | None

    def _renew(self, job: Job) -> bool:
        raise NotImplementedError

    def _job_failed(self, job: Job, error: str, stats: RunStats) -> None:
        raise NotImplementedError

    def _work_channel(self, lane: str, stats: RunStats, stop: threading.Event) -> None:
        """A channel's jobs (fulfillments to push), one call at a time."""
        api = self.apis.get(_channel_of(lane))
        while not stop.is_set():
            now = self.clock()
            if lane in self.breaker.open_lanes(now):
                return
            with self.db.session() as session:
                jobs = outbox.claim_due_jobs(session, owner=self.owner, now=now,
                                             policy=self.policy, lane=lane, limit=self.batch)
                session.commit()
            if not jobs:
                return
            for i, job in enumerate(jobs):
                if stop.is_set():
                    with self.db.session() as session:
                        outbox.release(session, [j.id for j in jobs[i:]], now=self.clock())
                        session.commit()
                    return
                if not self._renew(job):
                    continue   # our lease ran out and another dispatcher has this job now
                try:
                    with bind(job_id=job.id):  # on every line of this job's work
                        ok = self._channel_job(lane, api, job, stats)
                except Exception as exc:  # a bug or an unexpected reply: this job only
                    log.exception("job %s (%s) failed unexpectedly", job.id, job.kind)
                    self._job_failed(job, f"unexpected {type(exc).__name__}: {exc}", stats)
                    continue
                if not ok:
                    # The channel is failing: the rest of the batch waits (untried, so the
                    # attempt they were claimed with is handed back).
                    now = self.clock()
                    with self.db.session() as session:
                        outbox.release(session, [j.id for j in jobs[i + 1:]], now=now,
                                       due=now + timedelta(seconds=self.policy.delay(1)))
                        session.commit()
                    return

    def _channel_job(self, lane: str, api: ChannelApi | None, job: Job,
                     stats: RunStats) -> bool:
        """Do one channel job; False when the channel failed in a way worth backing off."""
        from shipment import fulfillment

        if job.kind == JobKind.SYNC_ORDERS:
            self._sync_job(lane, job, stats)
            return True
        if job.kind == JobKind.PUSH_INVENTORY:
            return self._inventory_job(lane, api, job, stats)
        if job.kind != JobKind.PUSH_FULFILLMENT:
            with self.db.session() as session:
                outbox.cancel(session, job.id, now=self.clock(),
                              reason=f"unknown job kind {job.kind!r}")
                session.commit()
            stats.add("cancelled")
            return True
        plan = fulfillment.plan_push(self.db, job.target)
        if plan is None:
            with self.db.session() as session:
                outbox.complete(session, job.id, now=self.clock(),
                                note="nothing to push (already pushed or removed)")
                session.commit()
            return True
        try:
            if api is None:
                raise ChannelApiError(f"no API configured for {_channel_of(lane)}"
                                      " (set its access token)", retryable=True)
            result = fulfillment.push(api, plan)
        except ChannelApiError as exc:
            now = self.clock()
            due = None
            if exc.retryable:
                with self.db.session() as session:
                    due = outbox.retry_later(session, job, now=now, error=str(exc),
                                             policy=self.policy)
                    session.commit()
            else:
                with self.db.session() as session:
                    outbox.bury(session, [job.id], now=now, error=str(exc))
                    session.commit()
            if due is not None:
                stats.add("retried")
                DISPATCH_JOBS.labels(job.kind, "retry").inc()
                self.breaker.record_failure(lane, now)
                log.warning("fulfillment for order %s: %s; retry at %s", plan.order_number, exc,
                            due.isoformat(timespec="seconds"))
                return False
            fulfillment.record_dead(self.db, plan.shipment_id)
            stats.add("dead")
            DISPATCH_JOBS.labels(job.kind, "dead").inc()
            self.alerts.alert(
                f"fulfillment for order {plan.order_number} could not be pushed",
                f"Channel: {_channel_of(lane)}\nOrder: {plan.order_number}\n"
                f"Shipment: {plan.shipment_id}\nTracking: {plan.push.tracking_number or '-'}\n"
                f"Error: {exc}\n\nNothing more will be tried for it automatically.",
                kind="fulfillment_dead", ref=str(plan.shipment_id))
            return exc.retryable
        now = self.clock()
        fulfillment.record_pushed(self.db, plan, result, now)
        with self.db.session() as session:
            outbox.complete(session, job.id, now=now,
                            note="already fulfilled" if result.already_done else None)
            session.commit()
        self.breaker.record_success(lane)
        stats.add("pushed")
        DISPATCH_JOBS.labels(job.kind, "pushed").inc()
        return True

    def _work_stock(self, stats: RunStats) -> None:
        """`stock sync` runs asked for through the API, one at a time."""
        from stock.sync import sync_stock

        while True:
            now = self.clock()
            with self.db.session() as session:
                jobs = outbox.claim_due_jobs(session, owner=self.owner, now=now,
                                             policy=self.policy, lane=STOCK_LANE, limit=1)
                session.commit()
            if not jobs:
                return
            [job] = jobs
            if self.folders is None or self.stock_rules is None:
                with self.db.session() as session:
                    outbox.cancel(session, job.id, now=now, reason="stock is not set up here")
                    session.commit()
                continue
            inventory = {name: api for name, api in self.apis.items()
                         if hasattr(api, "set_quantities")}
            try:
                run = sync_stock(db=self.db, book=self.book, folders=self.folders,
                                 apis=inventory,  # type: ignore[arg-type]
                                 rules=self.stock_rules, alerts=self.alerts, now=self.clock)
            except ChannelApiError as exc:
                self._job_failed(job, str(exc), stats)
                continue
            with self.db.session() as session:
                outbox.complete(session, job.id, now=self.clock(), note=run.summary()[:500])
                session.commit()

    def _inventory_job(self, lane: str, api: ChannelApi | None, job: Job,
                       stats: RunStats) -> bool:
        """New quantities for the SKUs of an order just accepted (the oversell window)."""
        from stock.levels import push_changed

        name = _channel_of(lane)
        skus = [str(s) for s in (job.data or {}).get("skus", [])]
        now = self.clock()
        if not hasattr(api, "set_quantities") or self.stock_rules is None:
            with self.db.session() as session:
                outbox.cancel(session, job.id, now=now,
                              reason=f"{name} has no stock API configured")
                session.commit()
            stats.add("cancelled")
            return True
        try:
            report = push_changed(self.db, channel=name, api=api,  # type: ignore[arg-type]
                                  rules=self.stock_rules, skus=skus, reason="sale",
                                  run=f"job-{job.id}", now=now)
        except ChannelApiError as exc:
            with self.db.session() as session:
                due = outbox.retry_later(session, job, now=now, error=str(exc),
                                         policy=self.policy)
                session.commit()
            stats.add("retried" if due else "dead")
            if due is None:
                self.alerts.alert(f"stock of {len(skus)} SKU(s) could not be pushed to {name}",
                                  f"SKUs: {', '.join(skus[:50])}\nError: {exc}",
                                  kind="inventory_dead", ref=str(job.id))
            self.breaker.record_failure(lane, now)
            return False
        with self.db.session() as session:
            outbox.complete(session, job.id, now=self.clock(),
                            note=f"{report.pushed} of {report.changed} changed pushed")
            session.commit()
        stats.add("pushed", report.pushed)
        return True

    def _sync_job(self, lane: str, job: Job, stats: RunStats) -> None:
        """An `orders sync` asked for through the API: one run, recorded in sync_runs."""
        name = _channel_of(lane)
        target = self.sync_targets.get(name)
        now = self.clock()
        with self.db.session() as session:
            if target is None:
                outbox.bury(session, [job.id], now=now,
                            error=f"no API configured for {name}: cannot sync its orders")
            else:
                raw = (job.data or {}).get("since")
                since = (datetime.fromisoformat(raw) if raw else
                         sync_since(self.db, name, now=now, overlap=self.sync_overlap))
                session.commit()
                run = sync_orders(self.db, target, purchasing=self.purchasing, since=since,
                                  now=now)
                outbox.complete(session, job.id, now=self.clock(),
                                note=f"sync run {run.id}: {run.status}")
            session.commit()
        stats.add("synced")

