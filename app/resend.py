"""Queueing a purchase order again, by an operator (`po resend`, the API)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import outbox
from app.errors import OrderHubError
from app.models import JobKind, OutboxJob, PoStatus, PurchaseOrder


def open_jobs_for(session: Session, target: str) -> list[OutboxJob]:
    """A purchase order's waiting or running jobs."""
    return list(session.execute(select(OutboxJob).where(
        OutboxJob.target == target, OutboxJob.status.in_(outbox.OPEN))).scalars())


def resend_purchase_order(session: Session, po: PurchaseOrder, *, now: datetime) -> str:
    """Queue a purchase order again. A `sent` one is uploaded under a new name (`_r1`, `_r2`,
    ...), never over the file the supplier has; a `failed` one (its upload went dead) goes out
    under its own name. Returns the file name it will have; raises ResendRefused otherwise."""
    if po.document is None:
        raise ResendRefused(f"purchase order {po.po_number} v{po.version} has no valid "
                            f"document ({po.error}); fix the cause and run `orders reroute`")
    if open_jobs_for(session, str(po.id)):
        raise ResendRefused(f"purchase order {po.po_number} v{po.version} is already queued")
    if po.status == PoStatus.FAILED:
        session.execute(update(PurchaseOrder).where(PurchaseOrder.id == po.id).values(
            status=PoStatus.PENDING, error=None, updated_at=now))
        outbox.enqueue(session, kind=JobKind.SEND_PO, target=str(po.id), lane=po.supplier,
                       now=now)
        return po.file_name
    if po.status in PoStatus.DELIVERED:
        earlier = session.execute(select(OutboxJob.data).where(
            OutboxJob.target == str(po.id), OutboxJob.kind == JobKind.SEND_PO)).scalars()
        count = 1 + sum(1 for data in earlier if data and data.get("file_name"))
        stem, dot, ext = po.file_name.rpartition(".")
        name = f"{stem}_r{count}.{ext}" if dot else f"{po.file_name}_r{count}"
        outbox.enqueue(session, kind=JobKind.SEND_PO, target=str(po.id), lane=po.supplier,
                       now=now, data={"file_name": name, "resend": count})
        return name
    raise ResendRefused(f"purchase order {po.po_number} v{po.version} is {po.status}: only a "
                        "sent or failed purchase order can be resent")


class ResendRefused(OrderHubError):
    """The purchase order cannot be queued again (and why)."""
