"""Shopify Admin API client: fulfillments with tracking back to Shopify, orders for reconcile.

Public API (names are stable; the lead wires them into the channel protocol):

- `ShopifyAdmin(shop_domain, access_token, *, api_version="2026-10", base_url=None, session=None,
  timeout=(5.0, 30.0), notify_customer=True, clock=time.monotonic, sleep=time.sleep,
  max_attempts=5, location_id=None)`; `ShopifyAdmin.from_settings(settings, *, session=None)`.
- `.fulfillment_orders(order_id) -> list[FulfillmentOrder]` (GraphQL `order.fulfillmentOrders`).
- `.create_fulfillment(order_id, shipped, tracking, notify_customer=None) -> FulfillmentResult`:
  `shipped` holds (line item id, quantity) with the REST numeric `line_items[].id` that OrderHub
  keeps in `order_lines.external_id` (a `gid://shopify/LineItem/...` works too).
- `.orders_updated_since(since, *, until=None) -> Iterator[FetchedOrder]` (REST `orders.json`).
- `.push_fulfillment(order_external_id, shipment: ShipmentPush) -> PushResult`: the
  `app.channels.base.ChannelApi` protocol on top of `create_fulfillment` (`orders_updated_since`
  is its other half).
- `.lookup_listings(skus, *, location_id=None) -> dict[str, Listing]` and
  `.set_quantities(changes, *, reason, reference, idempotency_key) -> SetResult`: the
  `app.channels.base.InventoryApi` protocol, in `shopify_inventory` (SHOPIFY_LOCATION_ID is the
  `location_id` default).
- `ShopifyApiSettings`, `shopify_api_settings_from_env(env)` (from `shopify_settings`);
  `Tracking`, `FulfillmentOrder`, `FulfillmentResult` (from `shopify_fulfillment`).
- Errors: `ShopifyApiError`, a `app.channels.base.ChannelApiError` (`retryable`) with the HTTP
  `status` when there was one.

Fulfillment goes through GraphQL: read the order's fulfillment orders, plan which of their lines
the shipment covers (`plan_fulfillment`), then one `fulfillmentCreate` per location. Lines with
nothing remaining are reported (`excess`), not an error; quantity that sits on ON_HOLD, SCHEDULED
or INCOMPLETE fulfillment orders makes the whole push a retryable error before anything is sent.
When the tracking has a number, the order's existing fulfillments with that number are read
first and count as done: a push retried after a lost answer does not fulfil the same parcel
twice (Shopify documents no idempotency key for `fulfillmentCreate`). For the same reason this
client never repeats the mutation after an ambiguous failure (timeout, 5xx): the error is
retryable and the caller's next attempt re-reads Shopify first.

Reconcile reads the REST Admin API because its order JSON is exactly what `orders/*` webhooks
carry, so each order goes through the same intake parser (`shopify.parse_order`). REST is
"legacy" since 2024-10 and closed to *new public* App Store apps since 2025-04; custom apps such
as OrderHub's may still use it. Without the `read_all_orders` scope Shopify only returns the last
60 days of orders.

Rate limits and retries live in `shopify_http.AdminTransport`: the GraphQL cost bucket is read
from every response and waited for before the next request; THROTTLED, 429, 5xx and timeouts are
retried a bounded number of times, then raised as retryable. Its state is per instance: share
one `ShopifyAdmin` per process.

The access token goes only to the configured base URL (pagination links are re-based onto it),
is never logged, and never appears in an exception message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from app.channels.base import (
    ChannelApiError,
    FetchedOrder,
    Listing,
    PushResult,
    QuantityChange,
    SetResult,
    ShipmentPush,
)
from app.channels.shopify_fulfillment import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    FulfillmentResult,
    Tracking,
    line_item_key,
    merge_quantities,
    plan_fulfillment,
)
from app.channels.shopify_http import (
    AdminTransport,
    ShopifyApiError,
    admin_session,
    json_list,
    json_object,
)
from app.channels.shopify_inventory import ShopifyInventory
from app.channels.shopify_settings import (
    DEFAULT_API_VERSION,
    ShopifyApiSettings,
    default_base_url,
    shopify_api_settings_from_env,
)

__all__ = [
    "ChannelApiError", "FetchedOrder", "FulfillmentOrder", "FulfillmentResult", "ShopifyAdmin",
    "ShopifyApiError", "ShopifyApiSettings", "Tracking", "shopify_api_settings_from_env",
]

logger = logging.getLogger(__name__)

ORDER_GID = "gid://shopify/Order/"
FAILED_FULFILLMENT_STATUSES = frozenset({"CANCELLED", "ERROR", "FAILURE"})

SCOPE_READ_FULFILLMENT_ORDERS = ("read_merchant_managed_fulfillment_orders (or "
                                 "read_assigned_/read_third_party_fulfillment_orders)")
SCOPE_WRITE_FULFILLMENT_ORDERS = ("write_merchant_managed_fulfillment_orders (or "
                                  "write_assigned_/write_third_party_fulfillment_orders)")
SCOPE_READ_ORDERS = "read_orders (and read_all_orders for orders older than 60 days)"

_LINE_FIELDS = "id remainingQuantity totalQuantity lineItem { id sku }"
# Sized to stay well under Shopify's 1,000-point cap for a single query; more pages are fetched.
FULFILLMENT_ORDERS_QUERY = f"""query OrderHubFulfillmentOrders($id: ID!, $after: String) {{
  order(id: $id) {{
    id
    fulfillmentOrders(first: 10, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{
        id
        status
        assignedLocation {{ location {{ id }} }}
        lineItems(first: 25) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {_LINE_FIELDS} }} }}
      }}
    }}
  }}
}}"""
FULFILLMENT_ORDER_LINES_QUERY = f"""query OrderHubFulfillmentOrderLines($id: ID!, $after: String) {{
  node(id: $id) {{
    ... on FulfillmentOrder {{
      lineItems(first: 100, after: $after) {{
        pageInfo {{ hasNextPage endCursor }} nodes {{ {_LINE_FIELDS} }}
      }}
    }}
  }}
}}"""
ORDER_FULFILLMENTS_QUERY = """query OrderHubOrderFulfillments($id: ID!) {
  order(id: $id) {
    id
    fulfillments(first: 10) {
      id
      status
      trackingInfo(first: 3) { number }
      fulfillmentLineItems(first: 25) { nodes { quantity lineItem { id } } }
    }
  }
}"""
FULFILLMENT_CREATE_MUTATION = """\
mutation OrderHubFulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}"""


class ShopifyAdmin:
    """A client of one shop's Admin API; see the module docstring."""

    def __init__(
        self,
        shop_domain: str,
        access_token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        base_url: str | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        notify_customer: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        location_id: str | None = None,
    ) -> None:
        if not access_token:
            raise ValueError("ShopifyAdmin needs an access token")
        self.shop_domain = shop_domain
        self.api_version = api_version
        self.base_url = (base_url or default_base_url(shop_domain, api_version)).rstrip("/")
        self.notify_customer = notify_customer
        self._http = AdminTransport(self.base_url, access_token, api_version=api_version,
                                    session=session or admin_session(self.base_url),
                                    timeout=timeout, clock=clock, sleep=sleep,
                                    max_attempts=max_attempts)
        self._inventory = ShopifyInventory(self._http, api_version=api_version,
                                           location_id=location_id)

    @classmethod
    def from_settings(cls, settings: ShopifyApiSettings, *,
                      session: requests.Session | None = None) -> ShopifyAdmin:
        return cls(settings.shop_domain, settings.access_token, api_version=settings.api_version,
                   base_url=settings.api_base_url, session=session,
                   notify_customer=settings.notify_customer,
                   location_id=settings.location_id)

    def __repr__(self) -> str:  # never the token
        return f"ShopifyAdmin(shop_domain={self.shop_domain!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ fulfillment

    def fulfillment_orders(self, order_id: str | int) -> list[FulfillmentOrder]:
        """All fulfillment orders of an order, every status, with all their line items."""
        gid = _order_gid(order_id)
        result: list[FulfillmentOrder] = []
        after: str | None = None
        while True:
            data = self._http.graphql("OrderHubFulfillmentOrders", FULFILLMENT_ORDERS_QUERY,
                                      {"id": gid, "after": after},
                                      scope_hint=SCOPE_READ_FULFILLMENT_ORDERS)
            order = data.get("order")
            if not isinstance(order, dict):
                raise ShopifyApiError(f"Shopify has no order {gid} (or the access token cannot "
                                      "see it)", retryable=False)
            connection = json_object(order.get("fulfillmentOrders"))
            for node in json_list(connection.get("nodes")):
                result.append(self._fulfillment_order(json_object(node)))
            after = _next_cursor(connection)
            if after is None:
                return result

    def create_fulfillment(
        self,
        order_id: str | int,
        shipped: Iterable[tuple[str, int]],
        tracking: Tracking,
        notify_customer: bool | None = None,
    ) -> FulfillmentResult:
        """Fulfil the shipped quantities with tracking; see the module docstring for the rules.
        `notify_customer` None means the client's default (SHOPIFY_NOTIFY_CUSTOMER)."""
        gid = _order_gid(order_id)
        requested = merge_quantities(shipped)
        if not requested:
            raise ValueError("create_fulfillment needs at least one shipped line")
        notify = self.notify_customer if notify_customer is None else notify_customer
        earlier = self._shipped_under(gid, tracking.number) if tracking.number else {}
        plan = plan_fulfillment(self.fulfillment_orders(gid), requested, earlier)
        if plan.unknown and len(plan.unknown) == len(requested):
            # Shopify hides fulfillment orders the token has no scope for instead of refusing.
            raise ShopifyApiError(f"none of the line items {', '.join(plan.unknown)} is on a "
                                  f"fulfillment order of Shopify order {gid} (wrong line ids, "
                                  f"or the app lacks {SCOPE_READ_FULFILLMENT_ORDERS})",
                                  retryable=False)
        if plan.blocked:
            # All or nothing: a shipment half pushed would leave the rest to a log line.
            raise ShopifyApiError(f"Shopify order {gid}: {_blocked(plan.blocked)} can't be "
                                  "fulfilled now (release the hold or wait for the date; "
                                  "the push is retried)", retryable=True)
        created: list[str] = []
        fulfilled: list[tuple[str, int]] = []
        excess = list(plan.excess)
        for group in plan.groups:
            made = self._create(gid, group.as_input(), tracking, notify, group.line_quantities,
                                created)
            if made is None:  # someone fulfilled these lines meanwhile
                excess.extend(group.line_quantities)
                continue
            created.append(made)
            fulfilled.extend(group.line_quantities)
            logger.info("shopify order %s: fulfillment %s created (%s)", gid, made,
                        _quantities(group.line_quantities))
        if excess:
            logger.warning("shopify order %s: nothing left to fulfil for %s", gid,
                           _quantities(excess))
        return FulfillmentResult(
            fulfillment_ids=tuple(created),
            fulfilled=tuple(fulfilled),
            already_done=not created and not plan.unknown,
            excess=tuple(excess),
            unknown=plan.unknown,
            already_shipped=plan.already_shipped,
        )

    def push_fulfillment(self, order_external_id: str, shipment: ShipmentPush) -> PushResult:
        """`ChannelApi.push_fulfillment`: `create_fulfillment` with the shipment's tracking and
        SHOPIFY_NOTIFY_CUSTOMER; what could not be fulfilled goes into the note."""
        result = self.create_fulfillment(
            order_external_id, shipment.lines,
            Tracking(company=shipment.carrier, number=shipment.tracking_number,
                     url=shipment.tracking_url))
        notes = []
        if result.already_shipped:
            notes.append(f"already fulfilled under this tracking number: "
                         f"{_quantities(result.already_shipped)}")
        if result.excess:
            notes.append(f"no longer open on Shopify: {_quantities(result.excess)}")
        if result.unknown:
            notes.append(f"on no Shopify fulfillment order: {', '.join(result.unknown)}")
        return PushResult(reference=", ".join(result.fulfillment_ids) or None,
                          already_done=result.already_done, note="; ".join(notes) or None)

    def _create(self, gid: str, items: list[dict[str, Any]], tracking: Tracking, notify: bool,
                line_quantities: tuple[tuple[str, int], ...], created: list[str]) -> str | None:
        """One `fulfillmentCreate`; its fulfillment id, or None if the lines were gone."""
        fulfillment: dict[str, Any] = {"lineItemsByFulfillmentOrder": items,
                                       "notifyCustomer": notify}
        if tracking.as_input():
            fulfillment["trackingInfo"] = tracking.as_input()
        data = self._http.graphql("OrderHubFulfillmentCreate", FULFILLMENT_CREATE_MUTATION,
                                  {"fulfillment": fulfillment},
                                  scope_hint=SCOPE_WRITE_FULFILLMENT_ORDERS, mutation=True)
        payload = json_object(data.get("fulfillmentCreate"))
        errors = [json_object(e) for e in json_list(payload.get("userErrors"))]
        made = json_object(payload.get("fulfillment")).get("id")
        if not errors and isinstance(made, str):
            return made
        # Shopify says "Invalid fulfillment order line item quantity requested." when the
        # quantity is no longer there; whether someone fulfilled it meanwhile is decided by
        # reading the fulfillment orders again, not by the wording.
        fresh = plan_fulfillment(self.fulfillment_orders(gid), line_quantities)
        if not fresh.groups and not fresh.blocked and not fresh.unknown:
            logger.info("shopify order %s: lines were fulfilled meanwhile (%s)", gid,
                        _user_errors(errors))
            return None
        done = f" (already created: {', '.join(created)})" if created else ""
        raise ShopifyApiError(f"Shopify refused the fulfillment of order {gid}: "
                              f"{_user_errors(errors) or 'no fulfillment returned'}{done}",
                              retryable=False)

    def _shipped_under(self, gid: str, number: str) -> dict[str, int]:
        """Quantities per line item in the order's live fulfillments with this tracking number
        (the first 10 fulfillments of the order, 25 lines each: enough for a drop-ship order)."""
        data = self._http.graphql("OrderHubOrderFulfillments", ORDER_FULFILLMENTS_QUERY,
                                  {"id": gid}, scope_hint=SCOPE_READ_FULFILLMENT_ORDERS)
        wanted = number.strip().casefold()
        shipped: dict[str, int] = {}
        for raw in json_list(json_object(data.get("order")).get("fulfillments")):
            fulfillment = json_object(raw)
            if fulfillment.get("status") in FAILED_FULFILLMENT_STATUSES:
                continue
            numbers = {str(json_object(t).get("number") or "").strip().casefold()
                       for t in json_list(fulfillment.get("trackingInfo"))}
            if wanted not in numbers:
                continue
            lines = json_object(fulfillment.get("fulfillmentLineItems")).get("nodes")
            for node in map(json_object, json_list(lines)):
                line_gid = json_object(node.get("lineItem")).get("id")
                quantity = node.get("quantity")
                if isinstance(line_gid, str) and isinstance(quantity, int):
                    key = line_item_key(line_gid)
                    shipped[key] = shipped.get(key, 0) + quantity
        return shipped

    def _fulfillment_order(self, node: dict[str, Any]) -> FulfillmentOrder:
        fo_id = str(node.get("id") or "")
        connection = json_object(node.get("lineItems"))
        raw_lines = list(json_list(connection.get("nodes")))
        after = _next_cursor(connection)
        while after is not None:
            data = self._http.graphql("OrderHubFulfillmentOrderLines",
                                      FULFILLMENT_ORDER_LINES_QUERY,
                                      {"id": fo_id, "after": after},
                                      scope_hint=SCOPE_READ_FULFILLMENT_ORDERS)
            more = json_object(json_object(data.get("node")).get("lineItems"))
            raw_lines.extend(json_list(more.get("nodes")))
            after = _next_cursor(more)
        location = json_object(json_object(node.get("assignedLocation")).get("location"))
        return FulfillmentOrder(
            id=fo_id,
            status=str(node.get("status") or ""),
            location_id=location.get("id") if isinstance(location.get("id"), str) else None,
            lines=tuple(_fulfillment_order_line(json_object(raw)) for raw in raw_lines),
        )

    # ------------------------------------------------------------------ stock

    def lookup_listings(self, skus: Sequence[str], *,
                        location_id: str | None = None) -> dict[str, Listing]:
        """`InventoryApi.lookup_listings`: each SKU's inventory item at the location (the given
        one, SHOPIFY_LOCATION_ID, or the shop's only active one); unknown SKUs are absent."""
        return self._inventory.lookup_listings(skus, location_id=location_id)

    def set_quantities(self, changes: Sequence[QuantityChange], *, reason: str = "correction",
                       reference: str | None = None, idempotency_key: str) -> SetResult:
        """`InventoryApi.set_quantities`: `inventorySetQuantities` with `@idempotent`."""
        return self._inventory.set_quantities(changes, reason=reason, reference=reference,
                                              idempotency_key=idempotency_key)

    # ------------------------------------------------------------------ reconcile

    def orders_updated_since(self, since: datetime, *,
                             until: datetime | None = None) -> Iterator[FetchedOrder]:
        """Every order updated at or after `since` (and at or before `until`), oldest update
        first, any status. Lazy: each page of 250 is fetched when the previous one is used up."""
        params = {"status": "any", "updated_at_min": _iso(since), "limit": "250",
                  "order": "updated_at asc"}
        if until is not None:
            params["updated_at_max"] = _iso(until)
        return self._order_pages(urlencode(params))

    def _order_pages(self, query: str | None) -> Iterator[FetchedOrder]:
        seen: set[str] = set()
        while query is not None and query not in seen:
            seen.add(query)
            response, payload = self._http.rest_get("orders.json", query,
                                                    scope_hint=SCOPE_READ_ORDERS)
            orders = payload.get("orders")
            if not isinstance(orders, list):
                raise ShopifyApiError("Shopify orders.json answered without an orders list",
                                      retryable=False)
            for order in orders:
                yield _fetched_order(order)
            query = _next_page_query(response)


# ---------------------------------------------------------------------- helpers

def _order_gid(order_id: str | int) -> str:
    text = str(order_id).strip()
    if text.startswith(ORDER_GID):
        text = text[len(ORDER_GID):]
    if not text.isdigit():
        raise ValueError(f"{order_id!r} is not a Shopify order id")
    return ORDER_GID + text


def _fulfillment_order_line(node: dict[str, Any]) -> FulfillmentOrderLine:
    item = json_object(node.get("lineItem"))
    remaining, total, sku = node.get("remainingQuantity"), node.get("totalQuantity"), item.get(
        "sku")
    return FulfillmentOrderLine(
        id=str(node.get("id") or ""),
        line_item_id=line_item_key(str(item.get("id") or "")),
        sku=sku if isinstance(sku, str) else None,
        remaining_quantity=remaining if isinstance(remaining, int) else 0,
        total_quantity=total if isinstance(total, int) else 0,
    )


def _fetched_order(order: Any) -> FetchedOrder:
    order_id = order.get("id") if isinstance(order, dict) else None
    if isinstance(order_id, bool) or not isinstance(order_id, int | str) or not str(
            order_id).strip():
        raise ShopifyApiError("Shopify orders.json returned an order without an id",
                              retryable=False)
    updated = _time(order.get("updated_at")) or _time(order.get("created_at"))
    if updated is None:
        raise ShopifyApiError(f"Shopify order {order_id} has no readable updated_at",
                              retryable=False)
    return FetchedOrder(external_id=str(order_id).strip(), updated_at=updated,
                        raw_body=json.dumps(order, separators=(",", ":")).encode())


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _next_page_query(response: requests.Response) -> str | None:
    """The query string of the `rel="next"` Link, to be sent to our own base URL: the token goes
    nowhere else, whatever host the link names. page_info is used exactly as given."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.path.endswith("/orders.json") or "page_info=" not in parts.query:
        raise ShopifyApiError("Shopify orders.json gave a next-page link that is not an "
                              "orders.json page", retryable=False)
    return parts.query


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("orders_updated_since needs timezone-aware datetimes")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _user_errors(errors: list[dict[str, Any]]) -> str:
    return "; ".join(str(e.get("message") or e) for e in errors)[:500]


def _quantities(pairs: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{line} x{qty}" for line, qty in pairs)


def _blocked(blocked: Iterable[tuple[str, int, str]]) -> str:
    return ", ".join(f"{line} x{qty} ({status})" for line, qty, status in blocked)


def _next_cursor(connection: dict[str, Any]) -> str | None:
    info = json_object(connection.get("pageInfo"))
    cursor = info.get("endCursor")
    return cursor if info.get("hasNextPage") is True and isinstance(cursor, str) else None
