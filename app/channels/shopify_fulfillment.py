"""Which Shopify fulfillment-order lines a shipment covers: pure planning, no HTTP.

Shopify fulfils through fulfillment orders (one or more per order and location), not through the
order's line items. A shipment from a supplier names the order's line items as OrderHub stores
them (`order_lines.external_id`, the REST numeric `line_items[].id`); `plan_fulfillment` maps
those to fulfillment-order line items with quantity remaining, splits a line across fulfillment
orders when it has to, and groups the result by location, because one `fulfillmentCreate` call
may only name fulfillment orders assigned to the same location.

What cannot be fulfilled is reported, never silently dropped and never a reason to fail the rest:
quantity beyond what remains (`excess`), lines that are on no fulfillment order (`unknown`), and
quantity that remains only on fulfillment orders that cannot be fulfilled now (`blocked`, e.g.
ON_HOLD).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LINE_ITEM_GID = "gid://shopify/LineItem/"
# Only these accept a new fulfillment (FulfillmentOrderStatus, Admin GraphQL).
FULFILLABLE_STATUSES = frozenset({"OPEN", "IN_PROGRESS"})
# Quantity left on these is real but needs someone to act first (release a hold, wait for the
# scheduled date, move it away from a fulfillment service that gave up).
BLOCKED_STATUSES = frozenset({"ON_HOLD", "SCHEDULED", "INCOMPLETE"})


@dataclass(frozen=True)
class Tracking:
    """What the customer gets to follow the parcel. Company names as in Shopify's carrier list
    (capitalisation matters there) get tracking URLs built by Shopify."""

    company: str | None = None
    number: str | None = None
    url: str | None = None

    def as_input(self) -> dict[str, str]:
        """`FulfillmentTrackingInput`, without the empty fields."""
        fields = {"company": self.company, "number": self.number, "url": self.url}
        return {key: value.strip() for key, value in fields.items() if value and value.strip()}


@dataclass(frozen=True)
class FulfillmentOrderLine:
    id: str                      # gid://shopify/FulfillmentOrderLineItem/...
    line_item_id: str            # the order's line item, as the REST id OrderHub stores
    sku: str | None
    remaining_quantity: int
    total_quantity: int


@dataclass(frozen=True)
class FulfillmentOrder:
    id: str                      # gid://shopify/FulfillmentOrder/...
    status: str                  # FulfillmentOrderStatus: OPEN, IN_PROGRESS, CLOSED, ...
    location_id: str | None      # gid://shopify/Location/... it is assigned to
    lines: tuple[FulfillmentOrderLine, ...]

    @property
    def fulfillable(self) -> bool:
        return self.status in FULFILLABLE_STATUSES


@dataclass(frozen=True)
class FulfillmentGroup:
    """One `fulfillmentCreate` call: fulfillment orders of one location."""

    location_id: str | None
    by_fulfillment_order: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    line_quantities: tuple[tuple[str, int], ...]   # (line item id, quantity) it fulfils

    def as_input(self) -> list[dict[str, Any]]:
        """`FulfillmentInput.lineItemsByFulfillmentOrder`."""
        return [
            {"fulfillmentOrderId": fo_id,
             "fulfillmentOrderLineItems": [{"id": line_id, "quantity": qty}
                                           for line_id, qty in items]}
            for fo_id, items in self.by_fulfillment_order
        ]


@dataclass(frozen=True)
class FulfillmentPlan:
    groups: tuple[FulfillmentGroup, ...]
    excess: tuple[tuple[str, int], ...]            # asked for, but nothing of it remains
    unknown: tuple[str, ...]                       # on no fulfillment order of the order
    blocked: tuple[tuple[str, int, str], ...]      # (line, quantity, status) not fulfillable now
    already_shipped: tuple[tuple[str, int], ...]   # fulfilled before under the same tracking


@dataclass(frozen=True)
class FulfillmentResult:
    """What `ShopifyAdmin.create_fulfillment` did.

    `already_done` is true when nothing had to be sent: every requested unit was either already
    fulfilled on Shopify (by an earlier push with the same tracking number, by the merchant, or
    meanwhile) or has nothing remaining, and no line was unknown.
    """

    fulfillment_ids: tuple[str, ...]
    fulfilled: tuple[tuple[str, int], ...]
    already_done: bool
    excess: tuple[tuple[str, int], ...] = ()          # nothing of it remained on Shopify
    unknown: tuple[str, ...] = ()                     # on no fulfillment order of the order
    already_shipped: tuple[tuple[str, int], ...] = ()  # earlier fulfillment, same tracking


def line_item_key(line_item_id: str) -> str:
    """The REST numeric id for a line item given as that id or as its GraphQL gid."""
    text = str(line_item_id).strip()
    return text[len(LINE_ITEM_GID):] if text.startswith(LINE_ITEM_GID) else text


def merge_quantities(shipped: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Requested quantities per line item, in first-seen order; a line named twice is summed."""
    totals: dict[str, int] = {}
    for line_id, quantity in shipped:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValueError(f"quantity for line item {line_id!r} must be a whole number >= 1, "
                             f"got {quantity!r}")
        key = line_item_key(line_id)
        totals[key] = totals.get(key, 0) + quantity
    return list(totals.items())


def plan_fulfillment(
    fulfillment_orders: Sequence[FulfillmentOrder],
    shipped: Iterable[tuple[str, int]],
    already_shipped: Mapping[str, int] | None = None,
) -> FulfillmentPlan:
    """Map shipped (line item id, quantity) pairs onto fulfillment-order lines with quantity
    remaining, grouped by location. `already_shipped` is what earlier fulfillments with the same
    tracking number hold per line item; that much of each request counts as done."""
    already = {line_item_key(k): v for k, v in (already_shipped or {}).items()}
    left = {line.id: line.remaining_quantity for fo in fulfillment_orders for line in fo.lines}
    allocations: list[tuple[FulfillmentOrder, FulfillmentOrderLine, int]] = []
    excess: list[tuple[str, int]] = []
    unknown: list[str] = []
    blocked: list[tuple[str, int, str]] = []
    done_before: list[tuple[str, int]] = []
    for line_id, quantity in merge_quantities(shipped):
        earlier = min(quantity, already.get(line_id, 0))
        if earlier:
            done_before.append((line_id, earlier))
        need = quantity - earlier
        candidates = [(fo, line) for fo in fulfillment_orders for line in fo.lines
                      if line.line_item_id == line_id]
        if not candidates:
            if need:
                unknown.append(line_id)
            continue
        for fo, line in candidates:
            if need and fo.fulfillable and left[line.id] > 0:
                take = min(need, left[line.id])
                left[line.id] -= take
                need -= take
                allocations.append((fo, line, take))
        for fo, line in candidates:
            if need and fo.status in BLOCKED_STATUSES and left[line.id] > 0:
                take = min(need, left[line.id])
                left[line.id] -= take
                need -= take
                blocked.append((line_id, take, fo.status))
        if need:
            excess.append((line_id, need))
    return FulfillmentPlan(
        groups=_group_by_location(allocations),
        excess=tuple(excess),
        unknown=tuple(unknown),
        blocked=tuple(blocked),
        already_shipped=tuple(done_before),
    )


def _group_by_location(
    allocations: Sequence[tuple[FulfillmentOrder, FulfillmentOrderLine, int]],
) -> tuple[FulfillmentGroup, ...]:
    # Dicts keep first-seen order, so calls and their line items come out deterministic.
    by_location: dict[str | None, dict[str, dict[str, int]]] = {}
    covered: dict[str | None, dict[str, int]] = {}
    for fo, line, quantity in allocations:
        fo_lines = by_location.setdefault(fo.location_id, {}).setdefault(fo.id, {})
        fo_lines[line.id] = fo_lines.get(line.id, 0) + quantity
        per_line = covered.setdefault(fo.location_id, {})
        per_line[line.line_item_id] = per_line.get(line.line_item_id, 0) + quantity
    return tuple(
        FulfillmentGroup(
            location_id=location,
            by_fulfillment_order=tuple(
                (fo_id, tuple(items.items())) for fo_id, items in fos.items()
            ),
            line_quantities=tuple(covered[location].items()),
        )
        for location, fos in by_location.items()
    )
