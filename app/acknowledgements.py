"""Suppliers' purchase-order acknowledgements: read from each supplier's `acks_path`, applied to
the purchase orders, and overdue ones alerted.

Each file is downloaded, kept in `inbound_files` with its SHA-256, parsed, applied and
committed; only then is it moved to `processed/` (or `error/` when it cannot be used) on the
supplier's server. A file already recorded (a crash after the commit, before the move) is only
moved. Nothing a supplier sent is lost: the bytes stay in the database whatever happens.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.alerts import AlertSink
from app.db import Database
from app.documents.acks import AckInvalid, Acknowledgement, parse_acknowledgement
from app.models import InboundFile, Order, OrderStatus, PoStatus, PurchaseOrder
from app.purchasing import lock_orders
from app.suppliers import Supplier, SupplierBook
from app.transports import Transport, TransportError
from app.transports.inbound import ready_names

log = logging.getLogger(__name__)

KIND = "ack"
MAX_ACK_BYTES = 5 * 1024 * 1024


@dataclass
class AckRun:
    """What one pass over the suppliers' acknowledgement folders did."""

    files: int = 0
    applied: int = 0            # purchase orders acknowledged or rejected
    quarantined: int = 0        # files that could not be used
    overdue_alerts: int = 0
    errors: list[str] = field(default_factory=list)   # suppliers whose folder could not be read


class AckUnusable(Exception):
    """An acknowledgement file that parses but cannot be applied (and why)."""


def poll_acknowledgements(*, db: Database, book: SupplierBook,
                          transports: Callable[[Supplier, str | None], Transport],
                          alerts: AlertSink, now: Callable[[], datetime],
                          settle_seconds: float = 2.0,
                          sleep: Callable[[float], None] = time.sleep) -> AckRun:
    """Read every supplier's `acks_path`, apply what is there, and alert on overdue ones."""
    run = AckRun()
    for supplier in book.suppliers:
        if not supplier.acks_path:
            continue
        try:
            with transports(supplier, supplier.acks_path) as folder:
                _read_folder(db, supplier, folder, alerts, now, run, settle_seconds, sleep)
        except TransportError as exc:
            run.errors.append(supplier.key)
            log.warning("acknowledgements of %s: %s", supplier.key, exc)
        run.overdue_alerts += alert_overdue(db, supplier, alerts, now())
    return run


def _read_folder(db: Database, supplier: Supplier, folder: Transport, alerts: AlertSink,
                 now: Callable[[], datetime], run: AckRun, settle_seconds: float,
                 sleep: Callable[[float], None]) -> None:
    names, _ = ready_names(folder, settle_seconds=settle_seconds, sleep=sleep)
    for name in names:
        try:
            data = folder.download(name, max_bytes=MAX_ACK_BYTES)
        except TransportError as exc:
            if exc.retryable or not exc.file_specific:
                raise
            run.quarantined += 1   # too big, or gone: a person must look, once
            alerts.alert(f"acknowledgement {name} from {supplier.key} could not be read",
                         f"Supplier: {supplier.key}\nFile: {name}\nReason: {exc}",
                         kind="ack_quarantined", ref=name)
            folder.archive(name, "error")
            continue
        run.files += 1
        outcome = _apply_file(db, supplier, name, data, now())
        if outcome is None:
            folder.archive(name, "processed")   # recorded earlier; the move did not happen
            continue
        applied, error, notable = outcome
        run.applied += applied
        for ack in notable:   # a refusal or a change needs a person to look at the order
            verb = "rejected" if ack.status == "rejected" else "accepted with changes"
            alerts.alert(f"{supplier.key} {verb} purchase order {ack.po_number}",
                         f"Supplier: {supplier.key}\nPurchase order: {ack.po_number}"
                         f"{f' v{ack.version}' if ack.version else ''}\nStatus: {ack.status}\n"
                         f"Supplier reference: {ack.supplier_reference or '-'}\n"
                         f"Note: {ack.note or '-'}\nFile: {name}",
                         kind=f"ack_{ack.status}", ref=ack.po_number)
        if error is not None:
            run.quarantined += 1
            alerts.alert(f"acknowledgement {name} from {supplier.key} could not be used",
                         f"Supplier: {supplier.key}\nFile: {name}\nReason: {error}\n\nThe file "
                         "is kept in OrderHub and moved to error/ on the supplier's server.",
                         kind="ack_quarantined", ref=name)
        folder.archive(name, "error" if error else "processed")


def _apply_file(db: Database, supplier: Supplier, name: str, data: bytes, now: datetime
                ) -> tuple[int, str | None, list[Acknowledgement]] | None:
    """Record and apply one file in one transaction. None: this file was recorded before."""
    digest = hashlib.sha256(data).hexdigest()
    with db.session() as session:
        seen = session.execute(select(InboundFile.id).where(
            InboundFile.supplier == supplier.key, InboundFile.kind == KIND,
            InboundFile.name == name, InboundFile.sha256 == digest)).first()
        if seen is not None:
            return None
        error: str | None = None
        acks: list[Acknowledgement] = []
        try:
            with session.begin_nested():
                acks = parse_acknowledgement(data)
                for ack in acks:
                    _apply(session, supplier, ack, now)
        except (AckInvalid, AckUnusable) as exc:
            error, acks = str(exc), []
        session.add(InboundFile(supplier=supplier.key, kind=KIND, name=name, sha256=digest,
                                size=len(data), content=data, received_at=now,
                                status="quarantined" if error else "applied", error=error))
        try:
            session.commit()
        except IntegrityError:   # another dispatcher recorded it at the same moment
            session.rollback()
            return None
    if error:
        log.error("acknowledgement %s from %s quarantined: %s", name, supplier.key, error)
    else:
        log.info("acknowledgement %s from %s: %d purchase order(s) updated", name,
                 supplier.key, len(acks))
    return len(acks), error, [a for a in acks if a.status != "accepted"]


def _apply(session: Session, supplier: Supplier, ack: Acknowledgement, now: datetime) -> None:
    stmt = select(PurchaseOrder).where(PurchaseOrder.supplier == supplier.key,
                                       PurchaseOrder.po_number == ack.po_number)
    if ack.version is not None:
        stmt = stmt.where(PurchaseOrder.version == ack.version)
    elif ack.payload_id is not None:
        stmt = stmt.where(PurchaseOrder.payload_id == ack.payload_id)
    candidates = [po for po in session.execute(stmt.order_by(PurchaseOrder.version.desc()))
                  .scalars() if po.status in PoStatus.DELIVERED]
    if not candidates:
        which = f" v{ack.version}" if ack.version is not None else ""
        raise AckUnusable(f"no purchase order {ack.po_number}{which} was sent to "
                          f"{supplier.key}")
    po = candidates[0]
    lock_orders(session, [po.order_id])
    po.status = PoStatus.REJECTED if ack.status == "rejected" else PoStatus.ACKNOWLEDGED
    po.ack_status = ack.status
    po.acknowledged_at = ack.issued_at or now
    po.ack_reference = ack.supplier_reference
    po.ack_note = ack.note
    po.updated_at = now
    if ack.status == "rejected":
        session.execute(update(Order).where(Order.id == po.order_id,
                                            Order.status != OrderStatus.CANCELLED)
                        .values(status=OrderStatus.NEEDS_ATTENTION, updated_at=now))


def alert_overdue(db: Database, supplier: Supplier, alerts: AlertSink, now: datetime) -> int:
    """One alert for the purchase orders sent longer than `ack_timeout` ago and not
    acknowledged (each purchase order is alerted once)."""
    if supplier.ack_timeout_seconds is None:
        return 0
    cutoff = now - timedelta(seconds=supplier.ack_timeout_seconds)
    with db.session() as session:
        overdue = list(session.execute(select(PurchaseOrder).where(
            PurchaseOrder.supplier == supplier.key, PurchaseOrder.status == PoStatus.SENT,
            PurchaseOrder.sent_at < cutoff, PurchaseOrder.ack_overdue_alerted_at.is_(None))
            .order_by(PurchaseOrder.sent_at)).scalars())
        if not overdue:
            return 0
        for po in overdue:
            po.ack_overdue_alerted_at = now
        listing = "\n".join(f"  {po.po_number} v{po.version} ({po.file_name}), sent "
                            f"{po.sent_at.isoformat(timespec='minutes') if po.sent_at else '?'}"
                            for po in overdue[:50])
        session.commit()
    alerts.alert(f"{len(overdue)} purchase order(s) to {supplier.key} not acknowledged",
                 f"Supplier: {supplier.key}\nNo acknowledgement within "
                 f"{timedelta(seconds=supplier.ack_timeout_seconds)} for:\n{listing}",
                 kind="ack_overdue", ref=supplier.key)
    return 1
