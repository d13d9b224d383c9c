"""The dashboard's pages. Each parses its query string, reads through `app/queries.py` (the same
reads as the JSON API) in one read-only session, and renders a template; the one action,
resending a purchase order, calls `app.resend` like `po resend` and the API do."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as Redirect

from app import outbox, queries
from app.dashboard import bp
from app.dashboard.auth import safe_next
from app.hub import hub
from app.models import (
    JobStatus,
    Order,
    OrderStatus,
    PoStatus,
    PurchaseOrder,
)
from app.resend import ResendRefused, resend_purchase_order
from app.types import utcnow

PAGE = 50
LAST_ORDERS = 10
MAX_OFFSET = 1_000_000


def _values(kind: type) -> tuple[str, ...]:
    return tuple(v for k, v in vars(kind).items() if k.isupper() and isinstance(v, str))


ORDER_STATUSES = _values(OrderStatus)
PO_STATUSES = _values(PoStatus)
JOB_STATUSES = _values(JobStatus)
# A purchase order an operator may queue again (app.resend decides; this only shows the button).
RESENDABLE = (PoStatus.FAILED, *PoStatus.DELIVERED)


@bp.get("/")
def overview() -> str:
    """Orders by status, the outbox, quarantined files, stock feeds, the last orders."""
    now = utcnow()
    with hub().db.read_session() as session:
        by_status = queries.orders_by_status(session)
        pending, oldest_pending = queries.pending_deliveries(session)
        jobs = outbox.depth(session, now=now)
        quarantined, files = queries.quarantined_files(session, limit=LAST_ORDERS)
        feeds = queries.stock_feeds(session)
        last, _ = queries.select_orders(session, limit=LAST_ORDERS)
    statuses = [(s, by_status.get(s, 0)) for s in ORDER_STATUSES]
    statuses += sorted((s, n) for s, n in by_status.items() if s not in ORDER_STATUSES)
    return render_template(
        "dashboard/overview.html", statuses=statuses, total=sum(by_status.values()),
        jobs=jobs, dead=sum(j["count"] for j in jobs if j["status"] == JobStatus.DEAD),
        waiting=sum(j["count"] for j in jobs if j["status"] != JobStatus.DEAD),
        quarantined=quarantined, files=files, feeds=feeds, orders=last, now=now,
        pending=pending, oldest_pending=oldest_pending)


@bp.get("/orders")
def orders() -> str:
    """Orders newest first, by status and channel, a page at a time (keyset, like the API)."""
    status = request.args.get("status", "")
    channel = request.args.get("channel", "")
    cursor = request.args.get("cursor", "")
    try:
        after = queries.decode_cursor(cursor) if cursor else None
    except ValueError:
        abort(400, "That page link is not one the dashboard made.")
    with hub().db.read_session() as session:
        page, more = queries.select_orders(session, limit=PAGE, status=status or None,
                                           channel=channel or None, after=after)
    older = (url_for(".orders", status=status or None, channel=channel or None,
                     cursor=queries.encode_cursor(page[-1])) if more and page else None)
    return render_template("dashboard/orders.html", orders=page, status=status,
                           channel=channel, statuses=ORDER_STATUSES, older=older,
                           paged=bool(cursor))


@bp.get("/orders/<order_id>")
def order(order_id: str) -> str:
    """One order: its lines, purchase orders, shipments and the deliveries behind it."""
    key = _uuid(order_id)
    with hub().db.read_session() as session:
        found = session.get(Order, key)
        if found is None:
            abort(404, f"There is no order {order_id}.")
        lines = queries.order_lines(session, key)
        pos = queries.select_purchase_orders(session, order_id=key, limit=200)
        shipments = queries.order_shipments(session, key)
        events = queries.order_events(session, key)
    return render_template("dashboard/order.html", order=found, lines=lines,
                           purchase_orders=pos, shipments=shipments, events=events,
                           resendable=RESENDABLE)


@bp.get("/purchase-orders")
def purchase_orders() -> str:
    """Purchase orders newest first, by status and supplier."""
    status = request.args.get("status", "")
    supplier = request.args.get("supplier", "")
    offset = _offset()
    with hub().db.read_session() as session:
        rows = queries.select_purchase_orders(session, limit=PAGE + 1, offset=offset,
                                              status=status or None,
                                              supplier=supplier or None)
        suppliers = queries.purchase_order_suppliers(session)
    return render_template(
        "dashboard/purchase_orders.html", purchase_orders=rows[:PAGE], status=status,
        supplier=supplier, statuses=PO_STATUSES, suppliers=suppliers, resendable=RESENDABLE,
        pages=_pages(".purchase_orders", offset, len(rows) > PAGE,
                     status=status or None, supplier=supplier or None))


@bp.get("/purchase-orders/<po_id>/document")
def purchase_order_document(po_id: str) -> Response:
    """The document exactly as stored, shown as text (never run as a page of this site)."""
    with hub().db.read_session() as session:
        po = session.get(PurchaseOrder, _uuid(po_id))
        if po is None:
            abort(404, f"There is no purchase order {po_id}.")
        if po.document is None:
            abort(404, f"Purchase order {po.po_number} has no valid document: {po.error}")
        response = Response(po.document, mimetype="text/plain")
        response.headers["Content-Disposition"] = f'inline; filename="{po.file_name}"'
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@bp.post("/purchase-orders/<po_id>/resend")
def resend(po_id: str) -> Redirect:
    """Queue a dead purchase order again, or a sent one under a new name (app.resend)."""
    back = safe_next(request.form.get("next") or url_for(".purchase_orders"))
    with hub().db.session() as session:
        po = session.get(PurchaseOrder, _uuid(po_id))
        if po is None:
            abort(404, f"There is no purchase order {po_id}.")
        try:
            name = resend_purchase_order(session, po, now=utcnow())
        except ResendRefused as exc:
            flash(f"Not resent: {exc}", "error")
            return redirect(back, 303)
        session.commit()
        flash(f"Purchase order {po.po_number} v{po.version} queued: it goes out as {name}.")
    return redirect(back, 303)


@bp.get("/outbox")
def outbox_jobs() -> str:
    """Outbox jobs newest first, by status, with the counts per kind and status."""
    status = request.args.get("status", "")
    offset = _offset()
    with hub().db.read_session() as session:
        jobs = queries.select_jobs(session, limit=PAGE + 1, offset=offset,
                                   status=status or None)
        summary = outbox.depth(session, now=utcnow())
    return render_template(
        "dashboard/outbox.html", jobs=jobs[:PAGE], status=status, statuses=JOB_STATUSES,
        summary=summary,
        pages=_pages(".outbox_jobs", offset, len(jobs) > PAGE, status=status or None))


@bp.get("/inventory")
def inventory() -> str:
    """Per SKU: feeds, reserved, and per channel available / last pushed."""
    after = request.args.get("after", "")
    with hub().db.read_session() as session:
        skus, more = queries.inventory_skus(session, limit=PAGE, after=after)
        items = queries.describe_inventory(session, skus, hub().stock_rules)
    channels = sorted({name for item in items for name in item["channels"]})
    return render_template(
        "dashboard/inventory.html", items=items, channels=channels, paged=bool(after),
        older=url_for(".inventory", after=skus[-1]) if more and skus else None)


@bp.errorhandler(HTTPException)
def error_page(exc: HTTPException) -> tuple[str, int]:
    """Errors of dashboard pages as a page (the rest of OrderHub answers JSON)."""
    code = exc.code or 500
    return render_template("dashboard/error.html", code=code, name=exc.name,
                           description=exc.description), code


@bp.app_template_filter("when")
def when(value: datetime | None) -> str:
    """A time as the operator reads it: UTC, to the minute."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


@bp.app_template_filter("ago")
def ago(value: datetime | float | None) -> str:
    """How long ago: a time, or a number of seconds."""
    if value is None:
        return "—"
    seconds = value if isinstance(value, int | float) else (utcnow() - value).total_seconds()
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@bp.app_template_filter("web_url")
def web_url(value: str | None) -> str | None:
    """A link only to an http(s) page (a carrier's tracking page), never `javascript:`."""
    if value and value.lower().startswith(("https://", "http://")):
        return value
    return None


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(404, f"{raw!r} is not an id.")


def _offset() -> int:
    raw = request.args.get("offset", "0")
    if not raw.isdigit() or int(raw) > MAX_OFFSET:
        abort(400, "offset: a whole number from 0 to 1000000.")
    return int(raw)


def _pages(endpoint: str, offset: int, more: bool, **args: Any) -> dict[str, str | None]:
    return {
        "newer": url_for(endpoint, offset=max(0, offset - PAGE) or None, **args)
        if offset else None,
        "older": url_for(endpoint, offset=offset + PAGE, **args) if more else None,
    }
