"""The dispatcher: takes due outbox jobs and does them, one supplier ("lane") per thread.

It also applies the webhook deliveries the web app has stored and acknowledged (one thread,
`app.intake.apply_pending`): their orders, routing and purchase orders, whose outbox jobs it
then takes like any other.

A lane's jobs are claimed in batches and sent over one connection. For each purchase order:
read the document, upload it atomically, then commit "sent" and "done" together. A crash between
the upload and the commit leaves the job `running`; when its lease ends it is claimed again, the
file is found on the server with the same bytes, and it counts as sent: never uploaded twice.

Errors: a retryable one (server down, timeout) reschedules the rest of the batch with backoff and
feeds the lane's circuit breaker; a permanent one (auth refused, host key changed, folder not
writable) buries the rest of the batch at once; a file-specific one (the name holds other bytes)
buries that job only. Every burial raises an alert, and its purchase order becomes `failed`
with the reason, so `po resend` or `orders reroute` can take it up again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from app import outbox
from app.alerts import Alerter, AlertSettings, AlertSink
from app.breaker import CircuitBreaker
from app.channel_jobs import CHANNEL_LANE, STOCK_LANE, ChannelJobs
from app.channels.base import Channel, ChannelApi
from app.db import Checkpointer, Database
from app.errors import OrderHubError
from app.intake import apply_pending
from app.logs import bind
from app.metrics import DISPATCH_JOBS, DISPATCH_SECONDS
from app.models import JobKind, Order, OrderStatus, PoStatus, PurchaseOrder
from app.outbox import Job, RetryPolicy
from app.pacing import GiveWay
from app.purchasing import Purchasing, lock_orders, route_order, settle_status
from app.reconcile import DEFAULT_OVERLAP, SyncTarget
from app.suppliers import Supplier, SupplierBook
from app.transports import LocalFolderTransport, Transport, TransportError, transport_for
from app.types import utcnow
from stock.levels import StockRules

log = logging.getLogger(__name__)

DEFAULT_SHADOW_DIR = "var/shadow"

# Lane names with a ':' can never be a supplier's (supplier keys are letters, digits, - and _).
ACKS = "acks:"              # the acknowledgement poll's slot among the busy lanes
INTAKE = "intake:"          # the thread applying accepted webhook deliveries


TransportFactory = Callable[[Supplier], Transport]


def default_transports(env: Mapping[str, str], *,
                       shadow_dir: str = DEFAULT_SHADOW_DIR) -> TransportFactory:
    """Transports as `suppliers.toml` describes them, passwords from `env`."""
    folders = folder_transports(env, shadow_dir=shadow_dir)

    def build(supplier: Supplier) -> Transport:
        return folders(supplier, None)
    return build


def folder_transports(env: Mapping[str, str], *, shadow_dir: str = DEFAULT_SHADOW_DIR
                      ) -> Callable[[Supplier, str | None], Transport]:
    """Like `default_transports`, for any folder of the supplier's server (None: its own).
    A supplier in shadow mode gets a local folder under `shadow_dir/<supplier>/` instead, so
    nothing ever reaches (or is read from) its real server."""
    def build(supplier: Supplier, folder: str | None) -> Transport:
        if supplier.mode == "shadow":
            inner = (folder or "inbound").strip("/") or "inbound"
            return LocalFolderTransport(Path(shadow_dir) / supplier.key / inner,
                                        temp_suffix=supplier.temp_suffix)
        password = env.get(supplier.password_env) if supplier.password_env else None
        return transport_for(supplier, password=password, folder=folder)
    return build


@dataclass
class RunStats:
    """What one dispatcher run did, job by job."""

    sent: int = 0
    already_present: int = 0
    applied: int = 0
    pushed: int = 0
    synced: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    @property
    def failed(self) -> int:
        return self.retried + self.dead

    def summary(self) -> str:
        applied = f"{self.applied} delivery(ies) applied, " if self.applied else ""
        pushed = f"{self.pushed} fulfillment(s) pushed, " if self.pushed else ""
        synced = f"{self.synced} sync run(s), " if self.synced else ""
        return (f"{applied}{self.sent} sent, {self.already_present} already on the server, "
                f"{pushed}"
                f"{synced}"
                f"{self.retried} to retry, {self.dead} dead, {self.cancelled} cancelled")


@dataclass(frozen=True)
class _Snapshot:
    """A purchase-order version as it was read before its upload."""

    id: uuid.UUID
    order_id: uuid.UUID
    status: str
    po_number: str
    version: int
    action: str
    file_name: str
    document: bytes | None
    sha256: str | None
    content_key: str
    payload_id: str
    lines: list[dict[str, Any]]
    created_at: datetime


class _LaneBroken(OrderHubError):
    """The rest of a lane's batch cannot go now (the error is not one file's fault)."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class Dispatcher(ChannelJobs):
    """Drains the outbox. `run()` loops (or drains what is due, with `once=True`)."""

    def __init__(self, *, db: Database, purchasing: Purchasing, policy: RetryPolicy,
                 transports: TransportFactory, alerts: AlertSink | None = None,
                 threads: int = 4, batch: int = 50, poll_seconds: float = 0.5,
                 breaker: CircuitBreaker | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 folders: Callable[[Supplier, str | None], Transport] | None = None,
                 ack_poll_seconds: float = 60.0,
                 apis: Mapping[str, ChannelApi] | None = None,
                 sync_targets: Mapping[str, SyncTarget] | None = None,
                 sync_overlap: timedelta = DEFAULT_OVERLAP,
                 stock_rules: StockRules | None = None,
                 ack_settle_seconds: float = 2.0,
                 channels: Mapping[str, Channel] | None = None,
                 intake_batch: int = 100, intake_lock_share: float = 0.02,
                 intake_max_delay_seconds: float = 300.0) -> None:
        self.db = db
        self.purchasing = purchasing
        self.book: SupplierBook = purchasing.book
        self.policy = policy
        self.transports = transports
        self.alerts: AlertSink = alerts or Alerter(AlertSettings())
        self.threads = threads
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.breaker = breaker or CircuitBreaker()
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.apis: Mapping[str, ChannelApi] = apis or {}
        # A paused supplier's purchase orders wait, untried (so never dead), until it resumes.
        self.paused = {s.key for s in self.book.suppliers if s.mode == "paused"}
        self.sync_targets: Mapping[str, SyncTarget] = sync_targets or {}
        self.sync_overlap = sync_overlap
        self.stock_rules = stock_rules
        self.ack_settle_seconds = ack_settle_seconds
        # Acknowledgements are read by the dispatcher too, when a supplier has `acks_path`.
        self.folders = folders
        self.ack_poll_seconds = ack_poll_seconds
        self._acks_wanted = folders is not None and any(s.acks_path or s.ack_timeout_seconds
                                                        for s in self.book.suppliers)
        # Webhook deliveries are applied when the dispatcher knows the channels they came from.
        self.channels: Mapping[str, Channel] | None = channels
        self.intake_batch = intake_batch
        # On SQLite, while deliveries pile up, the dispatcher holds the write lock at most this
        # share of the time (more as deliveries wait longer), so acknowledging new ones never
        # waits long for it.
        self.give_way = GiveWay(db, share=intake_lock_share,
                                max_delay_s=intake_max_delay_seconds)
        self._give_way: GiveWay | None = None

    # ------------------------------------------------------------ the loop

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> RunStats:
        """Work until `stop` is set (or, with `once`, until nothing is due)."""
        stop = stop or threading.Event()
        stats = RunStats()
        # A run that loops shares SQLite with the web; one that drains (`once`) takes its time.
        self._give_way = None if once else self.give_way
        busy: dict[str, Future[None]] = {}
        next_acks = time.monotonic()
        if once and self.channels is not None:
            self._apply_deliveries(stats, stop, once=True)  # their jobs are due in this run
        # A loop that runs beside the web checkpoints SQLite's log, so web workers need not.
        with Checkpointer(self.db) if not once else nullcontext(), \
                ThreadPoolExecutor(self.threads + 2, thread_name_prefix="dispatch") as pool:
            while True:
                if not once and self.channels is not None and INTAKE not in busy:
                    busy[INTAKE] = pool.submit(self._apply_deliveries, stats, stop)
                if self._acks_wanted and ACKS not in busy and time.monotonic() >= next_acks:
                    busy[ACKS] = pool.submit(self._poll_acks)
                    next_acks = time.monotonic() + self.ack_poll_seconds
                for lane, future in list(busy.items()):
                    if future.done():
                        del busy[lane]
                        if future.exception() is not None:
                            log.error("lane %s stopped on an unexpected error",
                                      lane, exc_info=future.exception())
                if stop.is_set():
                    wait(list(busy.values()))
                    break
                lanes: list[str] = []
                free = self.threads - len(busy.keys() - {ACKS, INTAKE})
                if free > 0:
                    now = self.clock()
                    with self.db.read_session() as session:
                        lanes = outbox.due_lanes(
                            session, now=now, limit=free,
                            exclude=(busy.keys() - {ACKS, INTAKE})
                            | self.breaker.open_lanes(now)
                            | self.paused)
                    for lane in lanes:
                        busy[lane] = pool.submit(self._work_lane, lane, stats, stop)
                if once and not busy and not lanes:
                    break
                if once and set(busy) == {ACKS} and not lanes:
                    wait([busy[ACKS]])
                    continue
                if busy:
                    wait(list(busy.values()), timeout=self.poll_seconds,
                         return_when=FIRST_COMPLETED)
                else:
                    stop.wait(self.poll_seconds)
        return stats

    def _apply_deliveries(self, stats: RunStats, stop: threading.Event, *,
                          once: bool = False) -> None:
        """Apply accepted webhook deliveries as they arrive (with `once`: those waiting now)."""
        assert self.channels is not None
        while not stop.is_set():
            try:
                outcomes = apply_pending(self.db, channels=self.channels,
                                         purchasing=self.purchasing, limit=self.intake_batch,
                                         give_way=self._give_way)
            except Exception:
                # Typically the database (a lock timeout, a restart): the deliveries stay
                # pending, and are applied once it answers again.
                log.exception("applying webhook deliveries failed; trying again shortly")
                if once:
                    return
                stop.wait(self.poll_seconds * 4)
                continue
            applied = outcomes.total()
            stats.add("applied", applied)
            if applied < self.intake_batch:
                if once:
                    return
                stop.wait(self.poll_seconds / 2)  # new deliveries are picked up within this

    def _poll_acks(self) -> None:
        from app.acknowledgements import poll_acknowledgements

        assert self.folders is not None
        run = poll_acknowledgements(db=self.db, book=self.book, transports=self.folders,
                                    alerts=self.alerts, now=self.clock,
                                    settle_seconds=self.ack_settle_seconds)
        if run.files or run.overdue_alerts or run.errors:
            log.info("acknowledgements: %d file(s), %d purchase order(s) updated, %d "
                     "quarantined, %d overdue alert(s)%s", run.files, run.applied,
                     run.quarantined, run.overdue_alerts,
                     f"; could not read {', '.join(run.errors)}" if run.errors else "")

    def _work_lane(self, lane: str, stats: RunStats, stop: threading.Event) -> None:
        """Claim and send this lane's due jobs, batch after batch, on one connection."""
        if lane.startswith(CHANNEL_LANE):
            self._work_channel(lane, stats, stop)
            return
        if lane == STOCK_LANE:
            self._work_stock(stats)
            return
        transport: Transport | None = None
        try:
            while not stop.is_set():
                now = self.clock()
                if lane in self.breaker.open_lanes(now):
                    return
                with self.db.session() as session:
                    jobs = outbox.claim_due_jobs(session, owner=self.owner, now=now,
                                                 policy=self.policy, lane=lane,
                                                 limit=self.batch)
                    session.commit()
                if not jobs:
                    return
                if transport is None:
                    transport = self._transport(lane, jobs, stats)
                    if transport is None:
                        return
                self._send_batch(transport, jobs, stats, stop)
        finally:
            if transport is not None:
                transport.close()

    def _transport(self, lane: str, jobs: list[Job], stats: RunStats) -> Transport | None:
        supplier = self.book.get(lane)
        try:
            if supplier is None:
                raise TransportError(f"supplier {lane!r} is not in the suppliers file",
                                     retryable=False)
            return self.transports(supplier)
        except (TransportError, ValueError, NotImplementedError) as exc:
            error = exc if isinstance(exc, TransportError) else TransportError(
                str(exc), retryable=False)
            self._lane_failed(lane, jobs, error, stats)
            return None

    # ------------------------------------------------------------ one batch

    def _send_batch(self, transport: Transport, jobs: list[Job], stats: RunStats,
                    stop: threading.Event) -> None:
        for i, job in enumerate(jobs):
            if stop.is_set():
                with self.db.session() as session:
                    outbox.release(session, [j.id for j in jobs[i:]], now=self.clock())
                    session.commit()
                return
            if not self._renew(job):
                continue   # our lease ran out and another dispatcher has this job now
            with self.db.read_session() as session:
                snapshot = _snapshots(session, [job.target]).get(job.target)
            try:
                with bind(job_id=job.id, po_id=job.target):  # on every line of this job's work
                    self._send_one(transport, job, snapshot, stats)
            except _LaneBroken as broken:
                self._lane_failed(job.lane, jobs[i:], broken.error, stats)
                return
            except Exception as exc:  # a bug or an unexpected reply: this job only, retried
                log.exception("job %s for %s failed unexpectedly", job.id, job.target)
                self._job_failed(job, f"unexpected {type(exc).__name__}: {exc}", stats)
        self.breaker.record_success(jobs[0].lane)

    def _paced(self) -> AbstractContextManager[None]:
        """Around a write transaction of a looping run: leaves the SQLite lock to arriving
        webhooks after it (`GiveWay`)."""
        return self._give_way.holding() if self._give_way else nullcontext()

    def _renew(self, job: Job) -> bool:
        with self._paced(), self.db.session() as session:
            mine = outbox.renew(session, job.id, owner=self.owner, now=self.clock(),
                                policy=self.policy)
            session.commit()
        return mine

    def _job_failed(self, job: Job, error: str, stats: RunStats) -> None:
        """One job failed in a way nobody foresaw: retry it with backoff, and give up (with
        an alert) after the usual time, rather than let it block its lane."""
        with self.db.session() as session:
            due = outbox.retry_later(session, job, now=self.clock(), error=error,
                                     policy=self.policy)
            session.commit()
        if due is not None:
            stats.add("retried")
        elif job.kind == JobKind.SEND_PO:
            self._bury(job.lane, [job], error, stats, buried=True)
        else:
            stats.add("dead")
            if job.kind == JobKind.PUSH_FULFILLMENT:
                from shipment import fulfillment

                fulfillment.record_dead(self.db, uuid.UUID(job.target))
            self.alerts.alert(f"{job.kind} job for {job.target} gave up",
                              f"Lane: {job.lane}\nJob: {job.id}\nError: {error}",
                              kind=f"{job.kind}_dead", ref=str(job.id))

    def _send_one(self, transport: Transport, job: Job, po: _Snapshot | None,
                  stats: RunStats) -> None:
        resend = (job.data or {}).get("file_name")
        reason = _nothing_to_send(job, po, resend)
        if reason is not None or po is None:
            with self.db.session() as session:
                outbox.cancel(session, job.id, now=self.clock(),
                              reason=reason or "purchase order not found")
                session.commit()
            stats.add("cancelled")
            DISPATCH_JOBS.labels(job.kind, "cancelled").inc()
            log.info("job %s for purchase order %s: nothing to send (%s)", job.id,
                     job.target, reason)
            return
        assert po.document is not None and po.sha256 is not None
        name = resend or po.file_name
        try:
            result = transport.upload_atomic(name, po.document)
        except TransportError as exc:
            if exc.retryable or not exc.file_specific:
                raise _LaneBroken(exc) from exc
            self._bury(job.lane, [job], str(exc), stats)
            return
        except OSError as exc:  # a transport that let one through: treat as transient
            raise _LaneBroken(TransportError(f"{type(exc).__name__}: {exc}",
                                             retryable=True)) from exc
        now = self.clock()
        with self._paced(), self.db.session() as session:
            if resend is None:
                self._mark_sent(session, po, now)
            outbox.complete(session, job.id, now=now,
                            note="already on the server" if result == "already_present" else None)
            session.commit()
        stats.add("already_present" if result == "already_present" else "sent")
        DISPATCH_JOBS.labels(job.kind, result).inc()
        DISPATCH_SECONDS.labels(job.lane).observe(max(0.0, (now - po.created_at).total_seconds()))
        log.info("purchase order %s v%s (%s) to %s: %s as %s (job %s)", po.po_number,
                 po.version, po.id, job.lane, result, name, job.id)

    def _mark_sent(self, session: Session, po: _Snapshot, now: datetime) -> None:
        """Record the version as sent, unless it changed while it was being uploaded: then
        the supplier has the version we read, so that is recorded as sent, and routing runs
        again to send the difference as a change (or cancel) document."""
        pos = _po_table()
        lock_orders(session, [po.order_id])   # routing locks the order first; so do we
        marked = session.execute(
            update(pos).where(pos.c.id == po.id, pos.c.status == PoStatus.PENDING,
                              pos.c.sha256 == po.sha256)
            .values(status=PoStatus.SENT, sent_at=now, error=None, updated_at=now))
        if marked.rowcount == 1:  # type: ignore[attr-defined]
            settle_status(session, po.order_id, now)
            return
        current = session.execute(select(pos.c.status, pos.c.sha256)
                                  .where(pos.c.id == po.id)).one_or_none()
        if current is not None and current.status in PoStatus.DELIVERED and (
                current.sha256 == po.sha256):
            return  # another dispatcher got there first
        log.warning("purchase order %s v%s changed while it was being uploaded: recording "
                    "what was sent and routing the order again", po.po_number, po.version)
        session.execute(update(pos).where(pos.c.id == po.id).values(
            status=PoStatus.SENT, sent_at=now, error=None, updated_at=now,
            action=po.action, document=po.document, sha256=po.sha256,
            content_key=po.content_key, payload_id=po.payload_id, lines=po.lines))
        route_order(session, order_id=po.order_id, purchasing=self.purchasing, now=now)

    # ------------------------------------------------------------ failures

    def _lane_failed(self, lane: str, jobs: list[Job], error: TransportError,
                     stats: RunStats) -> None:
        if not error.retryable:
            self._bury(lane, jobs, str(error), stats)
            self.breaker.record_failure(lane, self.clock())
            return
        now = self.clock()
        dead: list[Job] = []
        with self.db.session() as session:
            for job in jobs:
                due = outbox.retry_later(session, job, now=now, error=str(error),
                                         policy=self.policy)
                if due is None:
                    dead.append(job)
            session.commit()
        retried = len(jobs) - len(dead)
        stats.add("retried", retried)
        DISPATCH_JOBS.labels(JobKind.SEND_PO, "retry").inc(retried)
        opened = self.breaker.record_failure(lane, now)
        log.warning("supplier %s: %s; %d job(s) will be retried%s", lane, error, retried,
                    f", circuit open until {opened.isoformat(timespec='seconds')}"
                    if opened else "")
        if dead:
            # retry_later already buried these; mark their purchase orders and alert.
            self._bury(lane, dead, f"gave up after retrying: {error}", stats, buried=True)

    def _bury(self, lane: str, jobs: list[Job], error: str, stats: RunStats, *,
              buried: bool = False) -> None:
        now = self.clock()
        pos = _po_table()
        po_ids = [uuid.UUID(j.target) for j in jobs if j.kind == JobKind.SEND_PO
                  and not (j.data or {}).get("file_name")]
        with self.db.session() as session:
            if po_ids:
                lock_orders(session, session.execute(
                    select(pos.c.order_id).where(pos.c.id.in_(po_ids))).scalars())
            if not buried:
                outbox.bury(session, [j.id for j in jobs], now=now, error=error)
            if po_ids:
                session.execute(update(pos).where(pos.c.id.in_(po_ids),
                                                  pos.c.status == PoStatus.PENDING)
                                .values(status=PoStatus.FAILED, error=f"dispatch: {error}",
                                        updated_at=now))
                orders = select(pos.c.order_id).where(pos.c.id.in_(po_ids))
                session.execute(update(Order).where(Order.id.in_(orders),
                                                    Order.status != OrderStatus.CANCELLED)
                                .values(status=OrderStatus.NEEDS_ATTENTION, updated_at=now))
            session.commit()
        stats.add("dead", len(jobs))
        DISPATCH_JOBS.labels(JobKind.SEND_PO, "dead").inc(len(jobs))
        refs = ", ".join(j.target for j in jobs[:20]) + (" ..." if len(jobs) > 20 else "")
        self.alerts.alert(
            f"{len(jobs)} purchase order(s) to {lane} could not be sent",
            f"Supplier: {lane}\nError: {error}\nPurchase orders: {refs}\n\n"
            "Nothing more will be tried for them. Fix the cause, then run "
            "`flask --app wsgi po resend PO_ID` (or POST /api/purchase-orders/PO_ID/resend).",
            kind="dispatch_dead", ref=jobs[0].target if len(jobs) == 1 else lane)


def _snapshots(session: Session, targets: list[str]) -> dict[str, _Snapshot]:
    ids = []
    for target in targets:
        try:
            ids.append(uuid.UUID(target))
        except ValueError:
            continue
    if not ids:
        return {}
    pos = _po_table()
    fields = [pos.c[name] for name in _Snapshot.__dataclass_fields__]
    rows = session.execute(select(*fields).where(pos.c.id.in_(ids)))
    return {str(row.id): _Snapshot(**row._mapping) for row in rows}


def _po_table() -> Table:
    table: Table = PurchaseOrder.__table__  # type: ignore[assignment]
    return table


def _nothing_to_send(job: Job, po: _Snapshot | None, resend: str | None) -> str | None:
    """Why this job has nothing to upload, or None when it has."""
    if job.kind != JobKind.SEND_PO:
        return f"unknown job kind {job.kind!r}"
    if po is None:
        return "purchase order not found"
    if po.document is None:
        return f"purchase order {po.po_number} has no valid document"
    if resend is not None:
        return None if po.status in (*PoStatus.DELIVERED, PoStatus.FAILED) else (
            f"purchase order is {po.status}")
    if po.status in PoStatus.DELIVERED:
        return "already sent"
    if po.status != PoStatus.PENDING:
        return f"purchase order is {po.status}"
    return None
