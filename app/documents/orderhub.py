"""OrderHub's native purchase-order XML, version 1 (`urn:orderhub:purchase-order:1`).

The format is ours and documented for suppliers in `FORMATS.md`; its schema is
`schemas/orderhub-purchase-order-1.xsd`. Rendering is a pure function of the document: the same
`PurchaseOrderDoc` always gives the same bytes.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from lxml import etree

from app.documents.common import (
    first_errors,
    format_decimal,
    format_utc,
    parse_untrusted,
    present,
    xml_safe,
)
from app.documents.model import DocumentInvalid, PurchaseOrderDoc

FORMAT = "orderhub"
NAMESPACE = "urn:orderhub:purchase-order:1"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "orderhub-purchase-order-1.xsd"

_NS = f"{{{NAMESPACE}}}"
# An XMLSchema object keeps one error log; validating from two threads at once would mix them.
_SCHEMA_LOCK = threading.Lock()


def render_orderhub(doc: PurchaseOrderDoc) -> bytes:
    """Render `doc` as an OrderHub purchase order: UTF-8 XML with a declaration."""
    root = etree.Element(
        _NS + "PurchaseOrder",
        nsmap={None: NAMESPACE},
        version=str(doc.version),
        action=doc.action,
    )
    _text(root, "PoNumber", doc.po_number)
    _text(root, "PayloadId", doc.payload_id)
    _optional_text(root, "PreviousPayloadId", doc.previous_payload_id)
    _text(root, "IssuedAt", format_utc(doc.issued_at, "issued_at", FORMAT))

    order = etree.SubElement(root, _NS + "Order")
    _text(order, "Number", doc.order_number)
    _text(order, "PlacedAt", format_utc(doc.order_placed_at, "order_placed_at", FORMAT))

    for tag, party in (("Buyer", doc.buyer), ("Supplier", doc.supplier)):
        element = etree.SubElement(root, _NS + tag, id=xml_safe(party.id))
        _text(element, "Name", party.name)

    if doc.ship_to is not None:
        address = doc.ship_to
        ship_to = etree.SubElement(root, _NS + "ShipTo")
        for tag, value in (
            ("Name", address.name),
            ("Company", address.company),
            ("Address1", address.address1),
            ("Address2", address.address2),
            ("City", address.city),
            ("Region", address.region),
            ("RegionCode", address.region_code),
            ("PostalCode", address.postal_code),
            ("CountryCode", address.country_code),
            ("Country", address.country),
            ("Phone", address.phone),
        ):
            _optional_text(ship_to, tag, value)

    if doc.contact is not None:
        contact = etree.SubElement(root, _NS + "Contact")
        _optional_text(contact, "Name", doc.contact.name)
        _optional_text(contact, "Email", doc.contact.email)
        _optional_text(contact, "Phone", doc.contact.phone)

    _text(root, "Currency", doc.currency)
    _optional_text(root, "Notes", doc.notes)

    lines = etree.SubElement(root, _NS + "Lines")
    for line in doc.lines:
        element = etree.SubElement(lines, _NS + "Line", number=str(line.line_number))
        _optional_text(element, "Sku", line.sku)
        _optional_text(element, "SupplierSku", line.supplier_sku)
        _text(element, "Title", line.title)
        _text(element, "Quantity", str(line.quantity))
        if line.unit_price is not None:
            _text(element, "UnitPrice", format_decimal(line.unit_price))

    data: bytes = etree.tostring(
        root, encoding="UTF-8", xml_declaration=True, pretty_print=True
    )
    return data


def validate_orderhub(xml: bytes) -> None:
    """Raise `DocumentInvalid` unless `xml` is a valid OrderHub purchase order, version 1."""
    root = parse_untrusted(xml, FORMAT, doctype_allowed=None)
    schema = _schema()
    with _SCHEMA_LOCK:
        if not schema.validate(root):
            raise DocumentInvalid(FORMAT, first_errors(schema.error_log))
    # The rules XSD 1.0 cannot state because they depend on the value of @action.
    action = root.get("action")
    if action in ("new", "change") and root.find(f"{_NS}Lines/{_NS}Line") is None:
        raise DocumentInvalid(FORMAT, f"a {action} document needs at least one Lines/Line")
    if action in ("change", "cancel") and root.find(_NS + "PreviousPayloadId") is None:
        raise DocumentInvalid(FORMAT, f"a {action} document needs PreviousPayloadId")


# ---------------------------------------------------------------- private


@functools.cache
def _schema() -> etree.XMLSchema:
    """The XSD, read once on first use (importing this module opens no file)."""
    return etree.XMLSchema(file=str(SCHEMA_PATH))


def _text(parent: etree._Element, tag: str, value: str) -> None:
    etree.SubElement(parent, _NS + tag).text = xml_safe(value)


def _optional_text(parent: etree._Element, tag: str, value: str | None) -> None:
    text = present(value)
    if text is not None:
        _text(parent, tag, text)
