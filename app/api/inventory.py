"""Stock as the operator sees it: per SKU the suppliers' feed quantities, what orders reserve,
what each channel may sell and was last sent; manual overrides; a sync on demand."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import select

from app import outbox, queries
from app.api import BadRequest, bp
from app.api.orders import _limit
from app.hub import hub
from app.models import ChannelListing, InventoryLog, JobKind
from app.types import new_id, utcnow

STOCK_SYNC_LANE = "stock:sync"


@bp.get("/inventory")
def list_inventory() -> Response:
    """SKUs in order, `after` (the last SKU of the previous page) and `limit` paging."""
    limit = _limit(request.args.get("limit"))
    after = request.args.get("after", "")
    with hub().db.read_session() as session:
        page, more = queries.inventory_skus(session, limit=limit, after=after)
        items = _describe(session, page)
    return jsonify(inventory=items, next_after=page[-1] if more and page else None)


@bp.get("/inventory/<path:sku>")
def get_inventory(sku: str) -> tuple[Response, int]:
    with hub().db.read_session() as session:
        [item] = _describe(session, [sku])
        if not item["suppliers"] and not item["channels"]:
            return jsonify(error=f"no stock or listing for SKU {sku!r}"), 404
        item["log"] = [
            {"channel": entry.channel, "before": entry.before, "after": entry.after,
             "reason": entry.reason, "run": entry.run, "at": entry.at.isoformat()}
            for entry in session.execute(select(InventoryLog).where(InventoryLog.sku == sku)
                                         .order_by(InventoryLog.at.desc()).limit(100))
            .scalars()]
    return jsonify(item), 200


@bp.patch("/inventory/<path:sku>")
def override_inventory(sku: str) -> tuple[Response, int]:
    """Body: {"channel": "shopify", "reason": "...", and any of "quantity" (a fixed quantity,
    null to go back to the feeds), "buffer", "percent", "max" (null: inherit)}."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("body: a JSON object is required")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest("reason: say why (it is logged)")
    services = hub()
    channel = body.get("channel")
    if channel not in services.inventory:
        raise BadRequest(f"channel: one of {', '.join(services.inventory) or '(none configured)'}")
    fields = {"quantity": "manual_quantity", "buffer": "buffer", "percent": "percent",
              "max": "max_quantity"}
    changes: dict[str, int | None] = {}
    for key, column in fields.items():
        if key in body:
            value = body[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0 or (key == "percent" and value > 100)):
                raise BadRequest(f"{key}: a whole number, 0 or more"
                                 + (" (at most 100)" if key == "percent" else "") + ", or null")
            changes[column] = value
    if not changes:
        raise BadRequest("nothing to change: give quantity, buffer, percent or max")
    now = utcnow()
    with services.db.session() as session:
        listing = session.execute(select(ChannelListing).where(
            ChannelListing.channel == channel, ChannelListing.sku == sku)).scalar_one_or_none()
        if listing is None:
            listing = ChannelListing(id=new_id(), channel=channel, sku=sku, updated_at=now)
            session.add(listing)
        before = listing.manual_quantity
        for column, value in changes.items():
            setattr(listing, column, value)
        listing.updated_at = now
        session.add(InventoryLog(id=new_id(), sku=sku, channel=channel, before=before,
                                 after=listing.manual_quantity,
                                 reason=f"manual: {reason.strip()}"[:255], run=None, at=now))
        outbox.enqueue(session, kind=JobKind.PUSH_INVENTORY, target=f"sku:{sku}",
                       lane=f"channel:{channel}:stock", now=now, data={"skus": [sku]})
        session.commit()
        [item] = _describe(session, [sku])
    return jsonify(item), 200


@bp.post("/inventory/sync")
def request_stock_sync() -> tuple[Response, int]:
    """Queue a `stock sync` (the dispatcher runs it; reading feeds takes a while)."""
    services = hub()
    with services.db.session() as session:
        job = outbox.enqueue(session, kind=JobKind.SYNC_STOCK, target="all",
                             lane=STOCK_SYNC_LANE, now=utcnow())
        session.commit()
    return jsonify(queued=str(job)), 202


def _describe(session: Any, skus: list[str]) -> list[dict[str, Any]]:
    return queries.describe_inventory(session, skus, hub().stock_rules)
