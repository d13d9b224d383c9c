"""UBL 2.1 `DespatchAdvice`, validated against the official OASIS XSD
(app/documents/schemas/ubl-2.1/maindoc/UBL-DespatchAdvice-2.1.xsd) before anything is read.

Read, and where from (suppliers put tracking and dates in different places, so several are
read, in this order):

- Shipment id: `cbc:ID` of the DespatchAdvice.
- Shipped at: `cac:Shipment/cac:Delivery/cac:Despatch/cbc:ActualDespatchDate` (+
  `cbc:ActualDespatchTime`), else `cac:Shipment/cac:Delivery/cbc:ActualDeliveryDate` (+
  `cbc:ActualDeliveryTime`), else `cbc:IssueDate` (+ `cbc:IssueTime`). The zone of the time,
  else of the date, else UTC; a date alone is midnight UTC.
- Packages: one per `cac:Shipment/cac:Consignment` with a `cbc:CarrierAssignedID` (its carrier
  `cac:CarrierParty/cac:PartyName/cbc:Name`), and one for `cac:Shipment/cac:Delivery/
  cbc:TrackingID` unless a consignment already carries that number. A carrier not named by the
  consignment is taken from `cac:Delivery/cac:CarrierParty`, else `cac:Delivery/cac:Despatch/
  cac:CarrierParty`, else the first consignment that names one. UBL has no tracking URL.
- Orders: each `cac:DespatchLine/cac:OrderLineReference/cac:OrderReference`, else the
  document's `cac:OrderReference` when it has exactly one; `cbc:ID` is the PO number and
  `cbc:UUID` (else `cac:DocumentReference/cbc:UUID`) our payload id. One notice per order.
- Lines: `cac:DespatchLine` with `cbc:DeliveredQuantity` (required here; 0 means the line did
  not ship and is left out, and an order with nothing shipped gives no notice),
  `cac:OrderLineReference/cbc:LineID` as the PO line number ("NA": unknown),
  `cac:Item/cac:BuyersItemIdentification/cbc:ID` (our SKU) and
  `cac:Item/cac:SellersItemIdentification/cbc:ID` (the supplier's). A DespatchLine naming
  several order lines is refused: its quantity cannot be split between them.
  `cac:DespatchLine/cac:Shipment` is not read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from lxml import etree

from app.documents.ubl import CAC, CBC, schema_error
from shipment.fields import clean, line_number, resolve_order, ubl_instant, xml_quantity
from shipment.model import NoticeInvalid, Package, ShipmentNotice, ShippedLine

DESPATCH_ADVICE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:DespatchAdvice-2"
DESPATCH_ADVICE_XSD: Final = "UBL-DespatchAdvice-2.1.xsd"

_NS: Final = {"cac": CAC, "cbc": CBC}
_DATES: Final = (
    ("cac:Shipment/cac:Delivery/cac:Despatch/cbc:ActualDespatchDate",
     "cac:Shipment/cac:Delivery/cac:Despatch/cbc:ActualDespatchTime"),
    ("cac:Shipment/cac:Delivery/cbc:ActualDeliveryDate",
     "cac:Shipment/cac:Delivery/cbc:ActualDeliveryTime"),
    ("cbc:IssueDate", "cbc:IssueTime"),
)
_CARRIER: Final = "cac:CarrierParty/cac:PartyName/cbc:Name"

_Order = tuple[str | None, str | None, int | None]


def read_ubl(root: etree._Element) -> list[ShipmentNotice]:
    """The notices in a parsed UBL DespatchAdvice; raises `NoticeInvalid`."""
    if root.getroottree().docinfo.doctype:
        raise NoticeInvalid("DespatchAdvice must not declare a DOCTYPE", "ubl")
    reason = schema_error(root.getroottree(), DESPATCH_ADVICE_XSD)
    if reason is not None:
        raise NoticeInvalid(reason, "ubl")
    shipped_at = _shipped_at(root)
    packages = _packages(root.find("cac:Shipment", _NS))
    headers = root.findall("cac:OrderReference", _NS)
    orders: dict[_Order, list[ShippedLine]] = {}
    for despatch_line in root.iterfind("cac:DespatchLine", _NS):
        order, line = _line(despatch_line, headers)
        shipped = orders.setdefault(order, [])
        if line is not None:
            shipped.append(line)
    return [
        ShipmentNotice(
            po_number=po_number,
            po_file_name=file_name,
            version=version,
            shipment_id=_text(root, "cbc:ID"),
            shipped_at=shipped_at,
            packages=packages,
            lines=tuple(lines),
            format="ubl",
        )
        for (po_number, file_name, version), lines in orders.items()
        if lines  # every line 0: nothing of this order shipped
    ]


def _line(despatch_line: etree._Element,
          headers: list[etree._Element]) -> tuple[_Order, ShippedLine | None]:
    where = f"cac:DespatchLine (line {despatch_line.sourceline})"
    references = despatch_line.findall("cac:OrderLineReference", _NS)
    if len(references) > 1:
        raise NoticeInvalid(f"{where} names {len(references)} order lines; OrderHub needs one "
                            "cac:OrderLineReference per despatch line", "ubl")
    reference = references[0]  # the schema requires one
    order_reference = reference.find("cac:OrderReference", _NS)
    if order_reference is None:
        if len(headers) != 1:
            raise NoticeInvalid(
                f"{where} names no order (cac:OrderLineReference/cac:OrderReference) and the "
                f"document has {len(headers)} cac:OrderReference: which order shipped?", "ubl")
        order_reference = headers[0]
    payload_id = (_text(order_reference, "cbc:UUID")
                  or _text(order_reference, "cac:DocumentReference/cbc:UUID"))
    order = resolve_order(_text(order_reference, "cbc:ID"), payload_id,
                          f"cac:OrderReference (line {order_reference.sourceline})", "ubl")

    delivered = despatch_line.find("cbc:DeliveredQuantity", _NS)
    if delivered is None:
        raise NoticeInvalid(f"{where} has no cbc:DeliveredQuantity: how many shipped?", "ubl")
    quantity = xml_quantity(delivered.text, f"{where} cbc:DeliveredQuantity", "ubl")
    number = line_number(_text(reference, "cbc:LineID"),
                         f"{where} cac:OrderLineReference/cbc:LineID", "ubl")
    buyers = _text(despatch_line, "cac:Item/cac:BuyersItemIdentification/cbc:ID")
    sellers = _text(despatch_line, "cac:Item/cac:SellersItemIdentification/cbc:ID")
    if number is None and buyers is None and sellers is None:
        raise NoticeInvalid(f"{where} gives neither an order line nor an item identification: "
                            "which line shipped?", "ubl")
    if quantity == 0:
        return order, None
    return order, ShippedLine(number, buyers or sellers, sellers, quantity)


def _shipped_at(root: etree._Element) -> datetime | None:
    for date_path, time_path in _DATES:
        date = root.find(date_path, _NS)
        if date is not None and clean(date.text):
            time = _text(root, time_path)
            where = f"{date_path} (line {date.sourceline})"
            return ubl_instant(date.text, time, where, "ubl")
    return None  # unreachable for a valid document: cbc:IssueDate is required


def _packages(shipment: etree._Element | None) -> tuple[Package, ...]:
    if shipment is None:
        return ()
    consignments = shipment.findall("cac:Consignment", _NS)
    carrier = (_text(shipment, f"cac:Delivery/{_CARRIER}")
               or _text(shipment, f"cac:Delivery/cac:Despatch/{_CARRIER}")
               or next((name for c in consignments if (name := _text(c, _CARRIER))), None))
    packages = [Package(_text(consignment, _CARRIER) or carrier, number, None)
                for consignment in consignments
                if (number := _text(consignment, "cbc:CarrierAssignedID"))]
    tracking = _text(shipment, "cac:Delivery/cbc:TrackingID")
    if tracking and all(package.tracking_number != tracking for package in packages):
        packages.append(Package(carrier, tracking, None))
    if not packages and carrier:
        packages.append(Package(carrier, None, None))
    return tuple(packages)


def _text(parent: etree._Element, path: str) -> str | None:
    element = parent.find(path, _NS)
    return None if element is None else clean(element.text)
