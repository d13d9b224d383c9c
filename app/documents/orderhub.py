"""OrderHub's native purchase-order XML, version 1 (`urn:orderhub:purchase-order:1`).

The format is ours and documented for suppliers in `FORMATS.md`; its schema is
`schemas/orderhub-purchase-order-1.xsd`. Rendering is a pure function of the document: the same
`PurchaseOrderDoc` always gives the same bytes.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from lxml import etree

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


# ---------------------------------------------------------------- shared by the renderers

def format_utc(moment: datetime, field: str, fmt: str) -> str:
    """`moment` in UTC to the second, with a literal Z: 2026-11-20T14:14:05Z."""
    return utc_seconds(moment, field, fmt).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_seconds(moment: datetime, field: str, fmt: str) -> datetime:
    """`moment` converted to UTC and cut to whole seconds; a naive `moment` is a bug."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time would be read in the host's zone: the bytes would depend on the machine.
        raise DocumentInvalid(fmt, f"{field} is a naive datetime; it must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def format_decimal(amount: Decimal) -> str:
    """Plain decimal notation, exactly as stored ("12.50", "1500"), never an exponent."""
    return format(amount, "f")


def present(value: str | None) -> str | None:
    """`value`, or None when it is missing or blank: shops send "" for an empty address line
    or SKU, and an optional element is left out rather than sent empty."""
    return value if value is not None and value.strip() else None


def xml_safe(value: str) -> str:
    """`value` without the characters XML 1.0 cannot carry (NUL, most C0 controls, lone
    surrogates); a stray control character in a customer's note must not stop an order."""
    return _NOT_XML_CHAR.sub("", value)


def parse_untrusted(xml: bytes, fmt: str, *, doctype_allowed: str | None) -> etree._Element:
    """Parse `xml` without loading a DTD, resolving an entity or touching the network.

    `doctype_allowed` is the only SYSTEM identifier the document may declare (None: no DOCTYPE
    at all). Declarations inside the DOCTYPE and entity references are rejected: OrderHub never
    writes them, so their presence means the bytes did not come from a renderer.
    """
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )
    try:
        tree = etree.ElementTree(etree.fromstring(xml, parser))
    except etree.XMLSyntaxError as exc:
        raise DocumentInvalid(fmt, f"not well-formed XML: {exc}") from None
    docinfo = tree.docinfo
    # libxml2 keeps an (empty) internal subset for every DOCTYPE; declarations in it are the
    # trick: entities (XXE, "billion laughs") and elements that would try to redefine ours.
    internal = docinfo.internalDTD
    if internal is not None and (
        next(internal.iterentities(), None) is not None
        or next(internal.iterelements(), None) is not None
    ):
        raise DocumentInvalid(fmt, "the document declares entities or elements in its DOCTYPE")
    system_url = docinfo.system_url
    if doctype_allowed is None and (docinfo.doctype or system_url):
        raise DocumentInvalid(fmt, "the document must not declare a DOCTYPE")
    if doctype_allowed is not None and system_url != doctype_allowed:
        raise DocumentInvalid(
            fmt, f"DOCTYPE SYSTEM identifier must be {doctype_allowed!r}, not {system_url!r}"
        )
    if next(tree.iter(etree.Entity), None) is not None:
        raise DocumentInvalid(fmt, "the document contains an entity reference")
    root: etree._Element = tree.getroot()
    return root


def first_errors(error_log: etree._ListErrorLog, limit: int = 3) -> str:
    """The first few validation errors, each with its line, for a person to read."""
    errors = [f"line {error.line}: {error.message}" for error in list(error_log)[:limit]]
    return "; ".join(errors) or "invalid (no detail from the validator)"


# ---------------------------------------------------------------- private

_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
