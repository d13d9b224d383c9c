"""cXML 1.2 `ShipNoticeRequest` (Fulfill.dtd). The DTD is neither fetched nor loaded: the
structure read here is checked by hand, as for acknowledgements (app/documents/acks.py).

Read, and where from:

- `cXML[@payloadID @timestamp]/Header`, then `Request/ShipNoticeRequest`.
- `ShipNoticeHeader/@shipmentID` (required): the shipment id. `@noticeDate` (required).
  Shipped at: `@shipmentDate`, else `@noticeDate` (a notice is sent once the goods left).
- `@operation`: `new` (default) or `update`, which replaces the earlier notice with the same
  shipmentID; `delete` (withdrawing a notice) is refused. `@shipmentType="planned"` announces a
  shipment that has not left: it gives no notice at all.
- Packages: one per tracking number, `ShipControl/ShipmentIdentifier` with no `domain` or
  domain `trackingNumber` / `trackingNumberID` (other domains, such as `billOfLading` or
  `PackingSlip`, are not parcels), with its `@trackingURL`. The carrier is the ShipControl's
  `CarrierIdentifier` of domain `companyName`, else `SCAC`, else the first one. A ShipControl
  without a tracking number still gives a package naming its carrier. The packages belong to
  the whole request, so every notice from it lists them all.
- One notice per `ShipNoticePortion`: the PO from `OrderReference/@orderID` and
  `OrderReference/DocumentReference/@payloadID` (our payload id gives the version). Lines from
  `ShipNoticeItem[@lineNumber @quantity]` with `ItemID/BuyerPartID` (our SKU) and
  `ItemID/SupplierPartID`. A portion with no ShipNoticeItem means the whole order shipped
  (lines = ()). Items with quantity 0 (not shipped) are left out, and a portion whose items are
  all 0 gives no notice: an empty list of lines would read as "everything shipped".
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

from shipment.fields import clean, instant, line_number, resolve_order, tracking_url, xml_quantity
from shipment.model import NoticeInvalid, Package, ShipmentNotice, ShippedLine

# The DOCTYPE real cXML files declare (Fulfill.dtd, cXML.dtd, any version); never loaded.
CXML_DTD: Final = re.compile(r"https?://xml\.cxml\.org/schemas/cxml/[0-9.]+/\w+\.dtd", re.I)
_TRACKING_DOMAINS: Final = frozenset({"trackingnumber", "trackingnumberid"})
_PATH: Final = "cXML/Request/ShipNoticeRequest"


def read_cxml(root: etree._Element) -> list[ShipmentNotice]:
    """The notices in a parsed cXML document; raises `NoticeInvalid`."""
    system_url = root.getroottree().docinfo.system_url
    if system_url is not None and not CXML_DTD.fullmatch(system_url):
        raise NoticeInvalid(f"unexpected DOCTYPE SYSTEM identifier {system_url!r}", "cxml")
    for name in ("payloadID", "timestamp"):
        _attribute(root, name, "cXML")
    _child(root, "Header", "cXML")
    request = _child(root, "Request", "cXML")
    notice = request.find("ShipNoticeRequest")
    if notice is None:
        found = ", ".join(str(child.tag) for child in request if isinstance(child.tag, str))
        raise NoticeInvalid(f"cXML/Request holds {found or 'nothing'} (line "
                            f"{request.sourceline}), not a ShipNoticeRequest", "cxml")
    header = _child(notice, "ShipNoticeHeader", _PATH)
    where = f"{_PATH}/ShipNoticeHeader"
    shipment_id = _attribute(header, "shipmentID", where)
    notice_date = _attribute(header, "noticeDate", where)
    operation = header.get("operation", "new")
    if operation not in ("new", "update"):
        raise NoticeInvalid(f"{where}/@operation {operation!r} (line {header.sourceline}) is not "
                            "supported: only new or update", "cxml")
    if header.get("shipmentType") == "planned":
        return []  # announced, not shipped: nothing to apply yet
    noticed_at = instant(notice_date, f"{where}/@noticeDate (line {header.sourceline})", "cxml")
    shipment_date = clean(header.get("shipmentDate"))
    shipped_at = noticed_at if shipment_date is None else instant(
        shipment_date, f"{where}/@shipmentDate (line {header.sourceline})", "cxml")

    packages = tuple(package for control in notice.iterfind("ShipControl")
                     for package in _packages(control))
    portions = notice.findall("ShipNoticePortion")
    if not portions:
        raise NoticeInvalid(f"{_PATH} (line {notice.sourceline}) has no ShipNoticePortion: "
                            "which order shipped?", "cxml")
    notices = []
    for portion in portions:
        po_number, file_name, version = _order(portion)
        lines = _lines(portion)
        if lines is None:
            continue  # every item 0: nothing of this order shipped
        notices.append(ShipmentNotice(
            po_number=po_number,
            po_file_name=file_name,
            version=version,
            shipment_id=shipment_id,
            shipped_at=shipped_at,
            packages=packages,
            lines=lines,
            format="cxml",
            operation="update" if operation == "update" else "new",
        ))
    return notices


def _packages(control: etree._Element) -> list[Package]:
    carriers = {(identifier.get("domain") or "").casefold(): clean(identifier.text)
                for identifier in reversed(control.findall("CarrierIdentifier"))}
    first = next((clean(identifier.text) for identifier in control.iterfind("CarrierIdentifier")),
                 None)
    carrier = carriers.get("companyname") or carriers.get("scac") or first
    packages = []
    for identifier in control.iterfind("ShipmentIdentifier"):
        domain = identifier.get("domain")
        if domain is not None and domain.casefold() not in _TRACKING_DOMAINS:
            continue
        where = f"ShipControl/ShipmentIdentifier/@trackingURL (line {identifier.sourceline})"
        url = tracking_url(identifier.get("trackingURL"), where, "cxml")
        number = clean(identifier.text)
        if number or url:
            packages.append(Package(carrier, number, url))
    if not packages and carrier:
        packages.append(Package(carrier, None, None))
    return packages


def _order(portion: etree._Element) -> tuple[str | None, str | None, int | None]:
    reference = _child(portion, "OrderReference", "ShipNoticePortion")
    document = reference.find("DocumentReference")
    payload_id = document.get("payloadID") if document is not None else None
    where = f"ShipNoticePortion/OrderReference (line {reference.sourceline})"
    return resolve_order(reference.get("orderID"), payload_id, where, "cxml")


def _lines(portion: etree._Element) -> tuple[ShippedLine, ...] | None:
    """The shipped lines; () for the whole order, None when every item says 0."""
    items = portion.findall("ShipNoticeItem")
    lines = []
    for item in items:
        where = f"ShipNoticeItem (line {item.sourceline})"
        quantity = xml_quantity(_attribute(item, "quantity", "ShipNoticeItem"),
                                f"{where} @quantity", "cxml")
        number = line_number(item.get("lineNumber"), f"{where} @lineNumber", "cxml")
        buyer = clean(item.findtext("ItemID/BuyerPartID"))
        supplier = clean(item.findtext("ItemID/SupplierPartID"))
        if number is None and buyer is None and supplier is None:
            raise NoticeInvalid(f"{where} has neither a lineNumber nor an ItemID: which line "
                                "shipped?", "cxml")
        if quantity > 0:
            lines.append(ShippedLine(number, buyer or supplier, supplier, quantity))
    return tuple(lines) if lines or not items else None


def _child(parent: etree._Element, name: str, path: str) -> etree._Element:
    element = parent.find(name)
    if element is None:
        raise NoticeInvalid(f"{path} (line {parent.sourceline}) has no {name}", "cxml")
    return element


def _attribute(element: etree._Element, name: str, path: str) -> str:
    value = clean(element.get(name))
    if value is None:
        raise NoticeInvalid(f"{path}/@{name} is missing or empty (line {element.sourceline})",
                            "cxml")
    return value
