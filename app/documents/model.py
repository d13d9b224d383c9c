"""A purchase order as the renderers see it: plain, frozen data, no database, no Flask.

A renderer is a pure function `render(doc: PurchaseOrderDoc) -> bytes` (UTF-8 XML with an XML
declaration, the same bytes for the same input) and a `validate(xml: bytes) -> None` that raises
`DocumentInvalid` naming what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from app.errors import OrderHubError

Action = Literal["new", "change", "cancel"]


class DocumentInvalid(OrderHubError):
    """A rendered document failed its schema: a bug in OrderHub, never sent to a supplier."""

    def __init__(self, fmt: str, reason: str) -> None:
        super().__init__(f"{fmt} document invalid: {reason}")
        self.format = fmt
        self.reason = reason


@dataclass(frozen=True)
class PostalAddress:
    name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    region: str | None = None          # province / state name
    region_code: str | None = None     # e.g. "AB", "CA"
    postal_code: str | None = None
    country_code: str | None = None    # ISO 3166-1 alpha-2, e.g. "CA"
    country: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Contact:
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Party:
    """The buyer (the seller running OrderHub) or the supplier."""

    id: str                            # a stable identifier (supplier key, seller id)
    name: str


@dataclass(frozen=True)
class PoLine:
    line_number: int                   # 1-based, stable across versions of the same PO
    sku: str | None                    # the seller's SKU
    supplier_sku: str | None           # the supplier's own part number, when mapped
    title: str
    quantity: int                      # > 0, except in a change that removes a line (0)
    unit_price: Decimal | None         # the seller's cost from the SKU map, when known


@dataclass(frozen=True)
class PurchaseOrderDoc:
    po_number: str                     # e.g. "1042-AGRIEST", the same for every version
    version: int                       # 1, 2, ...
    action: Action                     # new (v1), change (later versions), cancel
    issued_at: datetime                # aware UTC; when this version was created
    order_number: str                  # the channel's order number, e.g. "#1042"
    order_placed_at: datetime          # aware UTC
    currency: str                      # ISO 4217, e.g. "USD"
    buyer: Party
    supplier: Party
    ship_to: PostalAddress | None      # None for an order with no shipping address
    contact: Contact | None            # the end customer, for the carrier
    lines: tuple[PoLine, ...]
    notes: str | None = None
    payload_id: str = ""               # unique id of this document (cXML payloadID)
    previous_payload_id: str | None = None  # the document a change or cancel refers to
