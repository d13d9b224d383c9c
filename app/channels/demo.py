"""The demo channel behind `make run`: a pretend shop that speaks Shopify's webhook format.

`DemoChannel` is a Shopify channel under its own name and secret, so `POST /webhooks/demo` is
checked exactly like `/webhooks/shopify` (HMAC-SHA256 over the raw bytes, constant time) and its
orders take the same intake path. `DemoApi` is the shop's "API": the orders it has are the JSON
files its order generator (`deploy/demo_shop.py`) wrote to `<demo dir>/orders/`, and each
fulfillment pushed back is appended to `<demo dir>/fulfillments.jsonl`. Nothing here exists
unless `DEMO_MODE` is true.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.channels.base import (
    Delivery,
    FetchedOrder,
    Headers,
    OrderData,
    OrderReference,
    PushResult,
    ShipmentPush,
    TopicAction,
)
from app.channels.shopify import ShopifyChannel

log = logging.getLogger(__name__)

NAME = "demo"
SHOP_DOMAIN = "demo-garden.myshopify.com"   # the account every demo order belongs to
ORDERS_FOLDER = "orders"
FULFILLMENTS_FILE = "fulfillments.jsonl"
# A file is read by `orders_updated_since` when written this long before `since` or later
# (its order's updated_at decides; the file time only saves parsing every old order).
_MTIME_SLACK = timedelta(minutes=5)


class DemoChannel:
    """Shopify's webhook format under the name "demo", with the demo's own secret."""

    name = NAME

    def __init__(self, secret: str, store: str | Path) -> None:
        self._shopify = ShopifyChannel([secret], SHOP_DOMAIN)
        self.store = Path(store)

    def verify(self, headers: Headers, raw_body: bytes) -> Delivery:
        """Shopify's check (`X-Shopify-Hmac-Sha256` over the raw body), named as this channel."""
        return dataclasses.replace(self._shopify.verify(headers, raw_body), channel=NAME)

    def account_allowed(self, account: str) -> bool:
        return self._shopify.account_allowed(account)

    def topic_action(self, topic: str) -> TopicAction:
        return self._shopify.topic_action(topic)

    def parse_order(self, payload: Any) -> OrderData:
        return self._shopify.parse_order(payload)

    def parse_event(self, topic: str, payload: Any) -> OrderData | OrderReference:
        return self._shopify.parse_event(topic, payload)

    def api(self) -> DemoApi:
        """The demo shop's API, on the same folder."""
        return DemoApi(self.store)


class DemoApi:
    """`ChannelApi` for the demo shop: orders from its folder, fulfillments to a JSON-lines file."""

    def __init__(self, store: str | Path) -> None:
        self.store = Path(store)
        self._lock = threading.Lock()

    def push_fulfillment(self, order_external_id: str, shipment: ShipmentPush) -> PushResult:
        """Record the fulfillment as the shop would: one JSON line per call."""
        at = datetime.now(UTC)
        reference = f"demo-fulfillment-{order_external_id}-{at.strftime('%Y%m%dT%H%M%S%f')}"
        record = {
            "id": reference,
            "order_id": order_external_id,
            "created_at": at.isoformat(timespec="seconds"),
            "line_items": [{"id": line_id, "quantity": qty} for line_id, qty in shipment.lines],
            "tracking_company": shipment.carrier,
            "tracking_number": shipment.tracking_number,
            "tracking_url": shipment.tracking_url,
        }
        self.store.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, open(self.store / FULFILLMENTS_FILE, "a", encoding="utf-8") as f:
            f.write(line)
        log.info("demo shop: order %s fulfilled (%s %s), %d line(s)", order_external_id,
                 shipment.carrier or "no carrier", shipment.tracking_number or "no tracking",
                 len(shipment.lines))
        return PushResult(reference=reference)

    def orders_updated_since(self, since: datetime) -> Iterator[FetchedOrder]:
        """The shop's orders updated at or after `since`, oldest change first."""
        folder = self.store / ORDERS_FOLDER
        if not folder.is_dir():
            return
        cutoff = (since - _MTIME_SLACK).timestamp()
        found: list[FetchedOrder] = []
        for path in folder.glob("*.json"):
            try:
                if path.stat().st_mtime < cutoff:
                    continue
                raw = path.read_bytes()
                order = json.loads(raw)
                updated_at = datetime.fromisoformat(order["updated_at"]).astimezone(UTC)
                external_id = str(order["id"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # A file being written or not an order: the next run sees it whole.
                log.warning("demo shop: skipping %s: %s", path.name, exc)
                continue
            if updated_at >= since:
                found.append(FetchedOrder(external_id=external_id, updated_at=updated_at,
                                          raw_body=raw))
        found.sort(key=lambda o: (o.updated_at, o.external_id))
        yield from found

