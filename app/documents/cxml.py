"""cXML 1.2 OrderRequest rendering for suppliers on Ariba, Coupa and other cXML networks.

cXML is defined by a DTD, not an XSD. The official DTD cannot be fetched here (and must never
be fetched at validation time), so `schemas/cxml-orderrequest-subset.dtd` declares the part of
the cXML 1.2.050 content model that this renderer emits, transcribed from the official DTD;
its header says where each content model comes from. Element order below follows it.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from lxml import etree

from app.documents.common import (
    first_errors,
    format_decimal,
    parse_untrusted,
    present,
    utc_seconds,
    xml_safe,
)
from app.documents.model import Contact, DocumentInvalid, PoLine, PurchaseOrderDoc

FORMAT = "cxml"
CXML_VERSION = "1.2.050"
SYSTEM_URL = f"http://xml.cxml.org/schemas/cXML/{CXML_VERSION}/cXML.dtd"
DOCTYPE = f'<!DOCTYPE cXML SYSTEM "{SYSTEM_URL}">'
DTD_PATH = Path(__file__).parent / "schemas" / "cxml-orderrequest-subset.dtd"

LANG = "en-US"
CREDENTIAL_DOMAIN = "NetworkID"
USER_AGENT = "OrderHub"
UNIT_OF_MEASURE = "EA"
# ItemDetail requires a Classification. OrderHub does not know the UNSPSC commodity of a SKU,
# so every line carries this placeholder; "00000000" is not a real UNSPSC code.
UNSPSC_PLACEHOLDER = "00000000"
ORDER_TYPES = {"new": "new", "change": "update", "cancel": "delete"}

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# A DTD object keeps one error log; validating from two threads at once would mix them.
_DTD_LOCK = threading.Lock()


def render_cxml(doc: PurchaseOrderDoc) -> bytes:
    """Render `doc` as a cXML OrderRequest: UTF-8 XML with a declaration and the cXML DOCTYPE."""
    root = etree.Element(
        "cXML",
        {
            "payloadID": xml_safe(doc.payload_id),
            "timestamp": _iso_offset(doc.issued_at, "issued_at"),
            "version": CXML_VERSION,
            _XML_LANG: LANG,
        },
    )
    header = etree.SubElement(root, "Header")
    _credential(etree.SubElement(header, "From"), doc.buyer.id)
    _credential(etree.SubElement(header, "To"), doc.supplier.id)
    sender = etree.SubElement(header, "Sender")
    _credential(sender, doc.buyer.id)
    _text(sender, "UserAgent", USER_AGENT)

    request = etree.SubElement(root, "Request", deploymentMode="production")
    order_request = etree.SubElement(request, "OrderRequest")
    _order_request_header(order_request, doc)
    for line in doc.lines:
        _item_out(order_request, line, doc.currency)

    data: bytes = etree.tostring(
        root, encoding="UTF-8", xml_declaration=True, pretty_print=True, doctype=DOCTYPE
    )
    return data


def validate_cxml(xml: bytes) -> None:
    """Raise `DocumentInvalid` unless `xml` is an OrderRequest valid against our cXML subset.

    The document's DOCTYPE is never followed: the parser loads no DTD and resolves no entity,
    and validation uses the local subset DTD.
    """
    root = parse_untrusted(xml, FORMAT, doctype_allowed=SYSTEM_URL)
    # Validating against a DTD object does not check the root element's name.
    if root.tag != "cXML":
        raise DocumentInvalid(FORMAT, f"the root element is {root.tag!r}, not 'cXML'")
    dtd = _dtd()
    with _DTD_LOCK:
        if not dtd.validate(root):
            raise DocumentInvalid(FORMAT, first_errors(dtd.error_log))
    # What the cXML specification requires in prose but a DTD cannot express.
    if not root.get("payloadID"):
        raise DocumentInvalid(FORMAT, "cXML/@payloadID is empty")
    header = root.find("Request/OrderRequest/OrderRequestHeader")
    order_type = header.get("type", "new")
    if order_type in ("update", "delete") and header.find("DocumentReference") is None:
        raise DocumentInvalid(
            FORMAT, f"an OrderRequest of type {order_type} needs a DocumentReference"
        )


def order_total(doc: PurchaseOrderDoc) -> Decimal:
    """Sum of quantity x unit price, or 0 when any line's price is unknown.

    cXML requires a Total; a partial sum would state a wrong order value, so an order with an
    unpriced line says 0 and the supplier prices it from its own list.
    """
    if any(line.unit_price is None for line in doc.lines):
        return Decimal(0)
    return sum(
        (line.quantity * line.unit_price for line in doc.lines if line.unit_price is not None),
        Decimal(0),
    )


# ---------------------------------------------------------------- private

@functools.cache
def _dtd() -> etree.DTD:
    """The subset DTD, read once on first use (importing this module opens no file)."""
    return etree.DTD(file=str(DTD_PATH))


def _order_request_header(order_request: etree._Element, doc: PurchaseOrderDoc) -> None:
    attributes = {
        "orderID": xml_safe(doc.po_number),
        "orderDate": _iso_offset(doc.order_placed_at, "order_placed_at"),
        "type": ORDER_TYPES[doc.action],
        "orderVersion": str(doc.version),
    }
    header = etree.SubElement(order_request, "OrderRequestHeader", attributes)
    # Content model (1.2.050): Total, ShipTo?, BillTo, ..., Comments*, ...,
    # DocumentReference?, ..., Extrinsic*
    total = etree.SubElement(header, "Total")
    # Total is 0 when a line has no known price (see order_total).
    _money(total, order_total(doc), doc.currency)
    if doc.ship_to is not None:
        _ship_to(header, doc)
    bill_to = etree.SubElement(etree.SubElement(header, "BillTo"), "Address")
    _lang_text(bill_to, "Name", doc.buyer.name)
    notes = present(doc.notes)
    if notes is not None:
        _lang_text(header, "Comments", notes)
    previous = present(doc.previous_payload_id)
    if doc.action != "new" and previous is not None:
        etree.SubElement(header, "DocumentReference", payloadID=xml_safe(previous))
    _text(header, "Extrinsic", doc.order_number).set("name", "CustomerOrderNumber")


def _ship_to(header: etree._Element, doc: PurchaseOrderDoc) -> None:
    """ShipTo/Address (Name, PostalAddress?, Email?, Phone?), in the DTD's order."""
    assert doc.ship_to is not None
    ship = dataclasses.replace(
        doc.ship_to,
        **{f.name: present(getattr(doc.ship_to, f.name))
           for f in dataclasses.fields(doc.ship_to)},
    )
    contact = doc.contact or Contact()
    address = etree.SubElement(etree.SubElement(header, "ShipTo"), "Address")
    name = ship.name or ship.company or present(contact.name) or ""
    _lang_text(address, "Name", name)
    # PostalAddress requires Street+, City and Country@isoCountryCode: without all three the
    # address cannot be written as cXML, so it is left out rather than invented.
    if ship.address1 and ship.city and ship.country_code:
        postal = etree.SubElement(address, "PostalAddress")
        for deliver_to in (ship.name, ship.company):
            if deliver_to:
                _text(postal, "DeliverTo", deliver_to)
        for street in (ship.address1, ship.address2):
            if street:
                _text(postal, "Street", street)
        _text(postal, "City", ship.city)
        _state(postal, ship.region, ship.region_code, ship.country_code)
        if ship.postal_code:
            _text(postal, "PostalCode", ship.postal_code)
        country = _text(postal, "Country", ship.country or ship.country_code)
        country.set("isoCountryCode", xml_safe(ship.country_code))
    email = present(contact.email)
    if email:
        _text(address, "Email", email)
    phone = ship.phone or present(contact.phone)
    if phone and ship.country_code:
        # cXML splits a phone number into dial code, area code and number; OrderHub only has
        # the number as the customer typed it, so it goes whole into Number and the dial and
        # area codes stay empty.
        number = etree.SubElement(etree.SubElement(address, "Phone"), "TelephoneNumber")
        _text(number, "CountryCode", "").set("isoCountryCode", xml_safe(ship.country_code))
        _text(number, "AreaOrCityCode", "")
        _text(number, "Number", phone)


def _state(postal: etree._Element, region: str | None, code: str | None, country: str) -> None:
    """State: the code suppliers print on labels ("CA"); when the shop gives a full ISO 3166-2
    code ("JP-13") that goes in isoStateCode and the region's name is the text ("東京都")."""
    if code and code.startswith(f"{country}-"):
        _text(postal, "State", region or code).set("isoStateCode", xml_safe(code))
    elif code or region:
        _text(postal, "State", code or region or "")


def _item_out(order_request: etree._Element, line: PoLine, currency: str) -> None:
    """ItemOut (ItemID, ItemDetail?, Comments*), in the DTD's order."""
    item = etree.SubElement(
        order_request,
        "ItemOut",
        quantity=str(line.quantity),
        lineNumber=str(line.line_number),
    )
    item_id = etree.SubElement(item, "ItemID")
    sku = present(line.sku)
    # The supplier's own part number when the SKU is mapped, else ours (it is all we know).
    _text(item_id, "SupplierPartID", present(line.supplier_sku) or sku or "")
    if sku:
        _text(item_id, "BuyerPartID", sku)
    if line.unit_price is not None:
        detail = etree.SubElement(item, "ItemDetail")
        _money(etree.SubElement(detail, "UnitPrice"), line.unit_price, currency)
        _lang_text(detail, "Description", line.title)
        _text(detail, "UnitOfMeasure", UNIT_OF_MEASURE)
        _text(detail, "Classification", UNSPSC_PLACEHOLDER).set("domain", "UNSPSC")
    else:
        # ItemDetail needs a UnitPrice; without one the title still reaches the supplier here.
        _lang_text(item, "Comments", line.title)


def _credential(parent: etree._Element, identity: str) -> None:
    credential = etree.SubElement(parent, "Credential", domain=CREDENTIAL_DOMAIN)
    _text(credential, "Identity", identity)


def _money(parent: etree._Element, amount: Decimal, currency: str) -> None:
    _text(parent, "Money", format_decimal(amount)).set("currency", xml_safe(currency))


def _iso_offset(moment: datetime, field: str) -> str:
    """ISO 8601 in UTC with an explicit offset, which cXML's %datetime.tz requires."""
    return utc_seconds(moment, field, FORMAT).isoformat()


def _text(parent: etree._Element, tag: str, value: str) -> etree._Element:
    element: etree._Element = etree.SubElement(parent, tag)
    element.text = xml_safe(value)
    return element


def _lang_text(parent: etree._Element, tag: str, value: str) -> None:
    _text(parent, tag, value).set(_XML_LANG, LANG)
