"""A supplier's shipment notice as OrderHub reads it: plain, frozen data, whatever the format.

Each parser (`csv_format`, `cxml_format`, `ubl_format`, `native_format`) turns one file into a
list of `ShipmentNotice`s, one per purchase order (and, in CSV, per parcel or shipment id), and
raises `NoticeInvalid` naming what is wrong and where. Nothing here touches a database, a file or
the network; `shipment.notices.parse_notice` picks the parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from app.errors import OrderHubError

NoticeFormat = Literal["csv", "cxml", "ubl", "orderhub"]
Operation = Literal["new", "update"]

# Checked before any parsing: a bigger file is refused, whatever it holds.
MAX_NOTICE_BYTES: Final = 20 * 1024 * 1024


class NoticeInvalid(OrderHubError):
    """A shipment-notice file that cannot be read; `reason` says what is wrong and where (line
    and column of a CSV row, element and line of an XML document). Nothing in the file may be
    applied."""

    def __init__(self, reason: str, fmt: NoticeFormat | None = None) -> None:
        super().__init__(f"{fmt or 'shipment'} notice invalid: {reason}")
        self.reason = reason
        self.format = fmt


@dataclass(frozen=True)
class ShippedLine:
    line_number: int | None     # the PO line number when the notice gives it
    sku: str | None             # our SKU when quoted, else the supplier's part number
    supplier_sku: str | None    # the supplier's own part number, when quoted as such
    quantity: int               # units shipped in this notice, > 0


@dataclass(frozen=True)
class Package:
    """One parcel or consignment; at least one of the three is set."""

    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None    # http or https only


@dataclass(frozen=True)
class ShipmentNotice:
    """What one notice says about one purchase order.

    At least one of `po_number` and `po_file_name` is set. `lines` empty means the whole PO
    shipped (cXML: a ShipNoticePortion without ShipNoticeItem; our format: no Line). The same
    line may be listed more than once (a line split across parcels): the quantities add up.
    """

    po_number: str | None        # our PO number as quoted ("shopify-1042-agriest")
    po_file_name: str | None     # our file name, when quoted instead ("PO_agriest_..._v1.xml")
    version: int | None          # the PO version, from our payload id or file name when quoted
    shipment_id: str | None      # the supplier's shipment / notice id
    shipped_at: datetime | None  # aware UTC
    packages: tuple[Package, ...]
    lines: tuple[ShippedLine, ...]
    format: NoticeFormat
    # "update": this notice replaces the supplier's earlier notice with the same shipment_id
    # (cXML ShipNoticeHeader/@operation); its lines are the new totals of that shipment.
    operation: Operation = "new"


@dataclass(frozen=True)
class CsvColumns:
    """The header names of one supplier's CSV files (matched ignoring case and surrounding
    white space). `po_number`, `quantity` and one of `sku` / `line_number` must be present;
    the others are optional."""

    po_number: str = "po_number"
    sku: str = "sku"
    quantity: str = "quantity"
    carrier: str = "carrier"
    tracking_number: str = "tracking_number"
    tracking_url: str = "tracking_url"
    shipped_at: str = "shipped_at"
    line_number: str = "line_number"
    supplier_sku: str = "supplier_sku"
    shipment_id: str = "shipment_id"
