"""What every sales channel provides, and the order in OrderHub's own terms.

No Flask, no database: a channel turns the platform's bytes into these dataclasses and back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from app.errors import OrderHubError


class Headers(Protocol):
    """Request headers, looked up case-insensitively (HTTP/2 lowercases them)."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: who sent it, which delivery it is, what it is about."""

    channel: str
    delivery_id: str
    topic: str
    account: str
    event_id: str | None = None
    api_version: str | None = None
    triggered_at: datetime | None = None


class TopicAction(Enum):
    PROCESS = "process"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Address:
    name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Customer:
    email: str | None = None
    name: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class LineData:
    external_id: str
    title: str
    quantity: int
    price: Decimal
    total_discount: Decimal = Decimal("0")
    sku: str | None = None
    variant_title: str | None = None
    vendor: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    requires_shipping: bool = True
    gift_card: bool = False


@dataclass(frozen=True)
class OrderData:
    """An order as a channel describes it at one moment (`source_updated_at`)."""

    external_id: str
    number: str
    currency: str
    total_price: Decimal
    placed_at: datetime
    source_updated_at: datetime
    lines: tuple[LineData, ...]
    subtotal_price: Decimal | None = None
    total_discounts: Decimal | None = None
    total_shipping: Decimal | None = None
    total_tax: Decimal | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    test: bool = False
    customer: Customer | None = None
    shipping_address: Address | None = None
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None


@dataclass(frozen=True)
class OrderReference:
    """An event about an order that does not carry the order itself (e.g. a Shopify order edit,
    whose full order follows as an update)."""

    external_id: str
    note: str


class ChannelApiError(OrderHubError):
    """A call to a channel's API failed; `retryable` says whether trying later can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class ShipmentPush:
    """What shipped, in the channel's terms: its line item ids and quantities, and tracking."""

    lines: tuple[tuple[str, int], ...]
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None


@dataclass(frozen=True)
class PushResult:
    reference: str | None            # e.g. the fulfillment id(s) the channel created
    already_done: bool = False       # the channel had it fulfilled already
    note: str | None = None          # e.g. quantities the channel no longer had open


@dataclass(frozen=True)
class FetchedOrder:
    """One order read from a channel's API, as the bytes its webhook would carry."""

    external_id: str
    updated_at: datetime
    raw_body: bytes


class ChannelApi(Protocol):
    """A channel's API, where it has one configured: fulfillments out, orders in."""

    def push_fulfillment(self, order_external_id: str, shipment: ShipmentPush) -> PushResult:
        """Mark these lines shipped with this tracking; raise `ChannelApiError` if it fails."""
        ...

    def orders_updated_since(self, since: datetime) -> Iterator[FetchedOrder]:
        """Every order updated at or after `since`, oldest change first."""
        ...


@dataclass(frozen=True)
class Listing:
    """How a SKU is known on a channel for stock (for Shopify: inventory item and location)."""

    sku: str
    inventory_item_id: str
    location_id: str


@dataclass(frozen=True)
class QuantityChange:
    listing: Listing
    quantity: int                      # the absolute quantity the channel may sell
    compare_quantity: int | None       # what we last pushed, when known (compare-and-set)


@dataclass(frozen=True)
class SetResult:
    applied: tuple[str, ...]                              # SKUs set
    mismatched: tuple[tuple[str, int | None], ...] = ()   # (SKU, what the channel really had)
    errors: tuple[str, ...] = ()


class InventoryApi(Protocol):
    """A channel's stock API: adding a channel is a module implementing this, nothing else."""

    def lookup_listings(self, skus: Sequence[str], *,
                        location_id: str | None = None) -> dict[str, Listing]:
        """The channel's ids for these SKUs (those it does not list are absent)."""
        ...

    def set_quantities(self, changes: Sequence[QuantityChange], *, reason: str = "correction",
                       reference: str | None = None, idempotency_key: str) -> SetResult:
        """Set absolute available quantities; raise `ChannelApiError` if the call fails."""
        ...


class Channel(Protocol):
    """A sales channel. Later issues add `fetch_orders`, `push_fulfillment`, `set_inventory`."""

    name: str

    def verify(self, headers: Headers, raw_body: bytes) -> Delivery:
        """Check authenticity on the raw bytes; raise `SignatureInvalid` if it fails."""
        ...

    def account_allowed(self, account: str) -> bool:
        """Whether deliveries for this account (e.g. a shop domain) belong to this install."""
        ...

    def topic_action(self, topic: str) -> TopicAction:
        """Whether a topic carries an order to process or is only acknowledged."""
        ...

    def parse_order(self, payload: Any) -> OrderData:
        """The channel's order payload in OrderHub's terms; raise `PayloadInvalid` if it can't."""
        ...

    def parse_event(self, topic: str, payload: Any) -> OrderData | OrderReference:
        """What a delivery of `topic` says: a whole order, or a reference to one."""
        ...
