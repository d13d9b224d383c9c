"""Purchase orders: list, one, its document as stored; and rerouting an order."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify, request

from app import queries
from app.api import BadRequest, bp
from app.api.orders import _limit
from app.hub import hub
from app.models import Order, PurchaseOrder
from app.purchasing import route_order
from app.resend import ResendRefused, resend_purchase_order
from app.types import utcnow


@bp.get("/purchase-orders")
def list_purchase_orders() -> Response:
    """Newest first; `status`, `supplier` and `order_id` filters; `offset` paging."""
    limit = _limit(request.args.get("limit"))
    try:
        offset = int(request.args.get("offset", "0"))
    except ValueError:
        raise BadRequest("offset: not a whole number") from None
    if not 0 <= offset <= 1_000_000:
        raise BadRequest("offset: must be between 0 and 1000000")
    order_id = request.args.get("order_id")
    key = _uuid("order_id", order_id) if order_id else None
    with hub().db.read_session() as session:
        rows = queries.select_purchase_orders(
            session, limit=limit, offset=offset, status=request.args.get("status"),
            supplier=request.args.get("supplier"), order_id=key)
    return jsonify(purchase_orders=[po_json(po) for po in rows])


@bp.get("/purchase-orders/<po_id>")
def get_purchase_order(po_id: str) -> tuple[Response, int]:
    with hub().db.read_session() as session:
        po = session.get(PurchaseOrder, _uuid_or_404(po_id))
        if po is None:
            return jsonify(error=f"purchase order {po_id} not found"), 404
        return jsonify(po_json(po, with_lines=True)), 200


@bp.get("/purchase-orders/<po_id>/document")
def get_purchase_order_document(po_id: str) -> Response | tuple[Response, int]:
    with hub().db.read_session() as session:
        po = session.get(PurchaseOrder, _uuid_or_404(po_id))
        if po is None:
            return jsonify(error=f"purchase order {po_id} not found"), 404
        if po.document is None:
            return jsonify(error=f"purchase order {po_id} has no valid document: {po.error}"), 409
        response = Response(po.document, mimetype="application/xml")
        response.headers["Content-Disposition"] = f'inline; filename="{po.file_name}"'
        return response


@bp.post("/purchase-orders/<po_id>/resend")
def resend(po_id: str) -> tuple[Response, int]:
    """Queue a dead purchase order again, or a sent one under a new file name."""
    with hub().db.session() as session:
        po = session.get(PurchaseOrder, _uuid_or_404(po_id))
        if po is None:
            return jsonify(error=f"purchase order {po_id} not found"), 404
        try:
            name = resend_purchase_order(session, po, now=utcnow())
        except ResendRefused as exc:
            return jsonify(error=str(exc)), 409
        session.commit()
        return jsonify(id=str(po.id), status=po.status, file_name=name, queued=True), 202


@bp.post("/orders/<order_id>/reroute")
def reroute(order_id: str) -> tuple[Response, int]:
    services = hub()
    key = _uuid_or_404(order_id)
    with services.db.session() as session:
        if session.get(Order, key) is None:
            return jsonify(error=f"order {order_id} not found"), 404
        result = route_order(session, order_id=key, purchasing=services.purchasing, now=utcnow())
        session.commit()
    return jsonify(
        order_status=result.order_status,
        created=[str(i) for i in result.created],
        replaced=[str(i) for i in result.replaced],
        withdrawn=[str(i) for i in result.withdrawn],
        failed_suppliers=result.failed,
        unrouted_lines=result.unrouted,
    ), 200


def po_json(po: PurchaseOrder, *, with_lines: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(po.id),
        "order_id": str(po.order_id),
        "supplier": po.supplier,
        "po_number": po.po_number,
        "version": po.version,
        "action": po.action,
        "status": po.status,
        "format": po.format,
        "file_name": po.file_name,
        "sha256": po.sha256,
        "error": po.error,
        "created_at": po.created_at.isoformat(),
        "updated_at": po.updated_at.isoformat(),
        "sent_at": po.sent_at.isoformat() if po.sent_at else None,
        "acknowledgement": None if po.ack_status is None else {
            "status": po.ack_status,
            "at": po.acknowledged_at.isoformat() if po.acknowledged_at else None,
            "supplier_reference": po.ack_reference,
            "note": po.ack_note,
        },
    }
    if with_lines:
        body["lines"] = po.lines
    return body


def _uuid(name: str, raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not an id") from None


def _uuid_or_404(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        from werkzeug.exceptions import NotFound

        raise NotFound(f"{raw!r} is not an id") from None
