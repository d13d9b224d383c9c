"""`shipments poll`: suppliers' shipment notices, from their SFTP folders to shipped order lines
and fulfillment jobs.

For each supplier with `shipments_path`: list the folder, leave temporary, marker and
still-growing files for the next run, download each new file, keep it (name, SHA-256, bytes) in
`inbound_files`, parse, apply and commit, and only then move it to `processed/` on the server, or
to `error/` with a `.reason.txt` beside it when it cannot be used. A file recorded before (same
name and bytes) is never applied again. A file is applied whole or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import outbox
from app.alerts import AlertSink
from app.db import Database
from app.logs import bind
from app.metrics import SHIPMENTS_APPLIED
from app.models import (
    InboundFile,
    JobKind,
    Order,
    OrderLine,
    PoStatus,
    PurchaseOrder,
    Shipment,
)
from app.purchasing import lock_orders, settle_status
from app.suppliers import Supplier, SupplierBook
from app.transports import Transport, TransportError
from app.transports.inbound import ready_names
from app.types import new_id
from shipment.matching import NoticeLine, PoLine, allocate
from shipment.notices import CsvColumns, NoticeInvalid, ShipmentNotice, parse_notice

log = logging.getLogger(__name__)

KIND = "shipment"
MAX_NOTICE_BYTES = 20 * 1024 * 1024

FolderTransports = Callable[[Supplier, str | None], Transport]


@dataclass
class PollRun:
    files: int = 0
    applied: int = 0            # files applied
    shipments: int = 0          # shipments recorded
    quarantined: int = 0
    skipped: int = 0            # still growing, markers, temporary files
    errors: list[str] = field(default_factory=list)   # suppliers whose folder failed


class NoticeUnusable(Exception):
    """A notice that parses but cannot be applied (unknown PO, SKU not on it, ...)."""


def poll_shipments(*, db: Database, book: SupplierBook, folders: FolderTransports,
                   alerts: AlertSink, now: Callable[[], datetime],
                   api_channels: Collection[str], settle_seconds: float = 2.0,
                   sleep: Callable[[float], None] = time.sleep,
                   only: str | None = None) -> PollRun:
    """Import every supplier's new shipment notices (or only supplier `only`'s)."""
    run = PollRun()
    for supplier in book.suppliers:
        if not supplier.shipments_path or (only is not None and supplier.key != only):
            continue
        try:
            with folders(supplier, supplier.shipments_path) as folder:
                _poll_folder(db, supplier, folder, folders, alerts, now, api_channels,
                             settle_seconds, sleep, run)
        except TransportError as exc:
            run.errors.append(supplier.key)
            log.error("shipment notices of %s could not be read: %s", supplier.key, exc)
    return run


def _poll_folder(db: Database, supplier: Supplier, folder: Transport,
                 folders: FolderTransports, alerts: AlertSink, now: Callable[[], datetime],
                 api_channels: Collection[str], settle_seconds: float,
                 sleep: Callable[[float], None], run: PollRun) -> None:
    names, skipped = ready_names(folder, settle_seconds=settle_seconds, sleep=sleep)
    run.skipped += skipped
    for name in names:
        try:
            data: bytes | None = folder.download(name, max_bytes=MAX_NOTICE_BYTES)
            error = None
        except TransportError as exc:
            if exc.retryable or not exc.file_specific:
                raise
            data, error = None, str(exc)
        run.files += 1
        outcome = (_Outcome(error=error) if data is None
                   else _import_file(db, supplier, name, data, now(), api_channels))
        for message in outcome.notes:
            alerts.alert(f"shipment notice {name} from {supplier.key}: more than ordered",
                         f"Supplier: {supplier.key}\nFile: {name}\n{message}\n\nWhat was "
                         "ordered has been applied; the rest was not.",
                         kind="shipment_excess", ref=name)
        if outcome.error is None:
            if not outcome.seen:
                run.applied += 1
                run.shipments += outcome.shipments
                SHIPMENTS_APPLIED.labels(supplier.key).inc(outcome.shipments)
            folder.archive(name, "processed")
            continue
        run.quarantined += 1
        if not outcome.seen:   # alerted once, before the move (which may fail)
            alerts.alert(f"shipment notice {name} from {supplier.key} could not be used",
                         f"Supplier: {supplier.key}\nFile: {name}\nReason: {outcome.error}"
                         "\n\nNothing from it was applied. The file is kept in OrderHub and "
                         "is moved to error/ on the supplier's server.",
                         kind="shipment_quarantined", ref=name)
        moved = folder.archive(name, "error")
        _write_reason(supplier, folders, moved, outcome.error)


def _write_reason(supplier: Supplier, folders: FolderTransports, moved: str,
                  error: str) -> None:
    assert supplier.shipments_path is not None
    subfolder, _, base = moved.rpartition("/")
    try:
        with folders(supplier, f"{supplier.shipments_path.rstrip('/')}/{subfolder}") as errors:
            errors.upload_atomic(f"{base}.reason.txt", f"{error}\n".encode())
    except (TransportError, ValueError) as exc:
        log.warning("could not write the reason file for %s: %s", moved, exc)


@dataclass
class _Outcome:
    shipments: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seen: bool = False          # recorded by an earlier run (which could not move the file)


def _import_file(db: Database, supplier: Supplier, name: str, data: bytes, now: datetime,
                 api_channels: Collection[str]) -> _Outcome:
    """Record and apply one file in one transaction (a file with the same bytes recorded
    before, under any name, is only reported as seen)."""
    digest = hashlib.sha256(data).hexdigest()
    with db.read_session() as session:
        earlier = session.execute(select(InboundFile.status, InboundFile.error).where(
            InboundFile.supplier == supplier.key, InboundFile.kind == KIND,
            InboundFile.sha256 == digest)).first()
    if earlier is not None:
        log.info("shipment notice %s of %s: these bytes were recorded before", name,
                 supplier.key)
        return _Outcome(error=earlier.error if earlier.status == "quarantined" else None,
                        seen=True)
    # Parse before the write transaction: a big file must not hold the write lock.
    try:
        notices = parse_notice(data, name=name, columns=_columns(supplier))
        problem: str | None = None
    except NoticeInvalid as exc:
        notices, problem = [], str(exc)
    except Exception as exc:  # a parser bug must not stop every supplier's poll
        log.exception("shipment notice %s of %s could not be parsed", name, supplier.key)
        notices, problem = [], f"unreadable ({type(exc).__name__}: {exc})"
    outcome = _Outcome(error=problem)
    with db.session() as session:
        record = InboundFile(id=new_id(), supplier=supplier.key, kind=KIND, name=name,
                             sha256=digest, size=len(data), content=data, received_at=now,
                             status="quarantined" if problem else "applied", error=problem)
        session.add(record)
        session.flush()
        if problem is None:
            try:
                with session.begin_nested():
                    for notice in notices:
                        excess = _apply(session, supplier, notice, record.id, now,
                                        api_channels)
                        outcome.shipments += 1
                        outcome.notes.extend(excess)
            except NoticeUnusable as exc:
                outcome = _Outcome(error=str(exc))
                record.status, record.error = "quarantined", str(exc)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return _Outcome(seen=True)
    if outcome.error:
        log.error("shipment notice %s from %s quarantined: %s", name, supplier.key,
                  outcome.error)
    else:
        log.info("shipment notice %s from %s: %d shipment(s) applied", name, supplier.key,
                 outcome.shipments)
    return outcome


def _columns(supplier: Supplier) -> CsvColumns:
    return CsvColumns(**dict(supplier.shipment_columns))


def _apply(session: Session, supplier: Supplier, notice: ShipmentNotice,
           file_id: uuid.UUID, now: datetime, api_channels: Collection[str]) -> list[str]:
    """Apply one notice; returns what it said beyond the order (applied up to the order)."""
    po = _find_po(session, supplier, notice)
    with bind(po_id=po.id, order_id=po.order_id):  # on every line about this notice
        return _apply_to(session, supplier, notice, po, file_id, now, api_channels)


def _apply_to(session: Session, supplier: Supplier, notice: ShipmentNotice, po: PurchaseOrder,
              file_id: uuid.UUID, now: datetime, api_channels: Collection[str]) -> list[str]:
    lock_orders(session, [po.order_id])   # routing locks the order first; so do we
    order = session.get(Order, po.order_id)
    assert order is not None
    if _seen_shipment(session, po, notice):
        return []
    order_lines = {line.position + 1: line for line in session.execute(
        select(OrderLine).where(OrderLine.order_id == po.order_id)).scalars()}
    po_lines = [
        PoLine(line_number=int(d["line_number"]), order_line_id=str(order_lines[
            int(d["line_number"])].id), sku=d.get("sku"), supplier_sku=d.get("supplier_sku"),
            ordered=int(d["quantity"]),
            shipped=order_lines[int(d["line_number"])].shipped_quantity)
        for d in po.lines if int(d["line_number"]) in order_lines]
    allocation = allocate([NoticeLine(line.line_number, line.sku, line.supplier_sku,
                                      line.quantity) for line in notice.lines], po_lines)
    if allocation.unmatched:
        raise NoticeUnusable(f"purchase order {po.po_number}: "
                             + "; ".join(allocation.unmatched))
    if allocation.total == 0:
        if allocation.excess:
            return [f"purchase order {po.po_number}: " + "; ".join(allocation.excess)]
        raise NoticeUnusable(f"purchase order {po.po_number} has nothing left to ship")
    shipped_lines = []
    for line_number, quantity in sorted(allocation.quantities.items()):
        line = order_lines[line_number]
        line.shipped_quantity += quantity
        shipped_lines.append({"order_line_id": str(line.id), "external_id": line.external_id,
                              "line_number": line_number, "sku": line.sku,
                              "quantity": quantity})
    package = notice.packages[0] if notice.packages else None
    numbers = [p.tracking_number for p in notice.packages if p.tracking_number]
    push = order.channel in api_channels
    shipment = Shipment(
        order_id=order.id, purchase_order_id=po.id, supplier=supplier.key,
        inbound_file_id=file_id, supplier_shipment_id=notice.shipment_id,
        carrier=package.carrier if package else None,
        tracking_number=", ".join(numbers) or None,
        tracking_url=package.tracking_url if package else None,
        shipped_at=notice.shipped_at or now, lines=shipped_lines,
        excess="; ".join(allocation.excess) or None,
        push_status="queued" if push else "not_configured", created_at=now)
    session.add(shipment)
    session.flush()
    if push:
        outbox.enqueue(session, kind=JobKind.PUSH_FULFILLMENT, target=str(shipment.id),
                       lane=f"channel:{order.channel}", now=now)
    session.flush()
    settle_status(session, order.id, now)
    excess = allocation.excess
    return [f"purchase order {po.po_number}: " + "; ".join(excess)] if excess else []


def _seen_shipment(session: Session, po: PurchaseOrder, notice: ShipmentNotice) -> bool:
    """A shipment id applied before (the supplier sent it again, or an update of it): its
    lines are never counted twice; an update may still correct the tracking before it is
    pushed."""
    numbers = ", ".join(p.tracking_number for p in notice.packages if p.tracking_number)
    if notice.shipment_id:
        same = Shipment.supplier_shipment_id == notice.shipment_id
    elif numbers:   # no shipment id: the same tracking number(s) for this PO is the same parcel
        same = Shipment.tracking_number == numbers
    else:
        return False
    earlier = session.execute(select(Shipment).where(
        Shipment.purchase_order_id == po.id, same)).scalars().first()
    if earlier is None:
        return False
    if not notice.shipment_id and not _same_lines(notice, earlier):
        return False   # another notice for the same parcel, saying something else
    package = notice.packages[0] if notice.packages else None
    if (notice.operation == "update" and package is not None and earlier.push_status != "pushed"
            and numbers and numbers != earlier.tracking_number):
        earlier.tracking_number = numbers
        earlier.carrier = package.carrier or earlier.carrier
        earlier.tracking_url = package.tracking_url or earlier.tracking_url
        log.info("shipment %s of %s: tracking updated to %s", notice.shipment_id,
                 po.po_number, numbers)
    else:
        log.info("shipment %s of %s was applied before; not applied again",
                 notice.shipment_id, po.po_number)
    return True


def _same_lines(notice: ShipmentNotice, earlier: Shipment) -> bool:
    """Whether a notice repeats what an earlier shipment recorded (line by line)."""
    if not notice.lines:
        return False
    recorded = [(d.get("line_number"), (d.get("sku") or "").casefold(), int(d["quantity"]))
                for d in earlier.lines]
    for line in notice.lines:
        sku = (line.sku or line.supplier_sku or "").casefold()
        if not any(qty == line.quantity and (number == line.line_number or (sku and sku == s))
                   for number, s, qty in recorded):
            return False
    return len(notice.lines) == len(recorded)


def _find_po(session: Session, supplier: Supplier, notice: ShipmentNotice) -> PurchaseOrder:
    stmt = select(PurchaseOrder).where(PurchaseOrder.supplier == supplier.key)
    if notice.po_number:
        stmt = stmt.where(PurchaseOrder.po_number == notice.po_number)
        if notice.version is not None:
            stmt = stmt.where(PurchaseOrder.version == notice.version)
    elif notice.po_file_name:
        stmt = stmt.where(PurchaseOrder.file_name == notice.po_file_name)
    else:
        raise NoticeUnusable("the notice names no purchase order")
    candidates = [po for po in session.execute(stmt.order_by(PurchaseOrder.version.desc()))
                  .scalars() if po.status in PoStatus.DELIVERED and po.action != "cancel"]
    if not candidates:
        which = notice.po_number or notice.po_file_name
        raise NoticeUnusable(f"no purchase order {which} was sent to {supplier.key}")
    return candidates[0]
