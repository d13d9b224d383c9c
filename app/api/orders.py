"""`GET /api/orders` and `GET /api/orders/<id>`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify, request

from app import queries
from app.api import BadRequest, bp
from app.hub import hub
from app.models import Order, OrderLine
from app.types import utcnow

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@bp.get("/orders")
def list_orders() -> Response:
    """Newest first (by when the order was placed), filtered, keyset-paginated."""
    limit = _limit(request.args.get("limit"))
    args = request.args
    since = _time("since", args["since"]) if args.get("since") else None
    until = _time("until", args["until"]) if args.get("until") else None
    after = _decode_cursor(args["cursor"]) if args.get("cursor") else None
    with hub().db.read_session() as session:
        page, more = queries.select_orders(
            session, limit=limit, channel=args.get("channel"), status=args.get("status"),
            since=since, until=until, after=after)
    next_cursor = queries.encode_cursor(page[-1]) if more and page else None
    return jsonify(orders=[order_json(o) for o in page], next_cursor=next_cursor)


@bp.get("/orders/<order_id>")
def get_order(order_id: str) -> tuple[Response, int]:
    try:
        key = uuid.UUID(order_id)
    except ValueError:
        return jsonify(error=f"{order_id!r} is not an order id"), 404
    with hub().db.read_session() as session:
        order = session.get(Order, key)
        if order is None:
            return jsonify(error=f"order {order_id} not found"), 404
        lines = queries.order_lines(session, key)
        events = queries.order_events(session, key)
    body = order_json(order)
    body["lines"] = [line_json(line) for line in lines]
    body["event_ids"] = [str(e.id) for e in events]
    body["events"] = [
        {"id": str(e.id), "topic": e.topic, "status": e.status,
         "received_at": e.received_at.isoformat()}
        for e in events
    ]
    return jsonify(body), 200


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "channel": order.channel,
        "account": order.account,
        "external_id": order.external_id,
        "number": order.number,
        "status": order.status,
        "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status,
        "cancelled_at": _iso(order.cancelled_at),
        "cancel_reason": order.cancel_reason,
        "test": order.test,
        "currency": order.currency,
        "subtotal_price": _money(order.subtotal_price),
        "total_discounts": _money(order.total_discounts),
        "total_shipping": _money(order.total_shipping),
        "total_tax": _money(order.total_tax),
        "total_price": _money(order.total_price),
        "customer": {
            "email": order.customer_email,
            "name": order.customer_name,
            "phone": order.customer_phone,
        },
        "shipping_address": order.shipping_address,
        "note": order.note,
        "placed_at": _iso(order.placed_at),
        "source_updated_at": _iso(order.source_updated_at),
        "received_at": _iso(order.created_at),
        "updated_at": _iso(order.updated_at),
    }


def line_json(line: OrderLine) -> dict[str, Any]:
    return {
        "id": str(line.id),
        "external_id": line.external_id,
        "sku": line.sku,
        "title": line.title,
        "variant_title": line.variant_title,
        "vendor": line.vendor,
        "product_id": line.product_id,
        "variant_id": line.variant_id,
        "quantity": line.quantity,
        "price": _money(line.price),
        "total_discount": _money(line.total_discount),
        "requires_shipping": line.requires_shipping,
        "gift_card": line.gift_card,
        "shipped_quantity": line.shipped_quantity,
        "routing": line.routing,
        "routing_reason": line.routing_reason,
        "supplier": line.supplier,
        "supplier_sku": line.supplier_sku,
        "unit_cost": _money(line.unit_cost),
    }


def _money(value: Any) -> str | None:
    # Strings, so no client turns 19.99 into 19.989999...
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit: {raw!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit: must be between 1 and {MAX_LIMIT}")
    return value


def _time(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name}: {raw!r} is not an ISO 8601 date or date-time") from None


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        return queries.decode_cursor(cursor)
    except ValueError:
        raise BadRequest("cursor: not a cursor this API returned") from None


@bp.post("/orders/sync")
def request_sync() -> tuple[Response, int]:
    """Queue an `orders sync` for each channel with an API (the dispatcher runs it).
    Optional JSON body {"since": ISO time}."""
    from app import outbox
    from app.models import JobKind

    services = hub()
    if not services.sync_targets:
        return jsonify(error="no channel has an API configured (e.g. SHOPIFY_ACCESS_TOKEN)"), 409
    body = request.get_json(silent=True) or {}
    since = body.get("since") if isinstance(body, dict) else None
    if since is not None:
        if not isinstance(since, str):
            raise BadRequest("since: must be an ISO 8601 time")
        parsed = _time("since", since)
        since = parsed.isoformat()
    now = utcnow()
    with services.db.session() as session:
        jobs = {name: str(outbox.enqueue(session, kind=JobKind.SYNC_ORDERS, target=name,
                                         lane=f"channel:{name}:sync", now=now,
                                         data={"since": since}))
                for name in services.sync_targets}
        session.commit()
    return jsonify(queued=jobs, since=since), 202
