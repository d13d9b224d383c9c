"""UBL 2.1 purchase orders: render a `PurchaseOrderDoc` and validate it against the OASIS XSDs.

Action "new" renders an `Order`, "change" an `OrderChange`, "cancel" an `OrderCancellation`.
Element order follows the XSD sequences in `schemas/ubl-2.1/maindoc/`; where a field goes:

- Document ID: `Order/cbc:ID` is the PO number; `OrderChange` and `OrderCancellation` use
  "<po_number>-v<version>" so each version is a distinct document, and point at the original
  order with `cac:OrderReference/cbc:ID` = PO number. `OrderChange/cbc:SequenceNumberID` is the
  version. `cbc:UUID` carries `payload_id` when it is set.
- Channel order number (e.g. "#1042"): `cbc:CustomerReference`, "a supplementary reference for
  the Order" assigned by the buyer, on `Order` and `OrderChange`; `OrderCancellation` has no such
  element, so there (and in every `cac:OrderReference`) it is `cac:OrderReference/
  cbc:CustomerReference`. `cbc:SalesOrderID` is not used: UBL reserves it for the seller's
  (supplier's) own number.
- Issue date and time: `issued_at` in UTC, whole seconds, the time written with a "Z".
- Parties: `cac:BuyerCustomerParty` / `cac:SellerSupplierParty`, each a `cac:Party` with
  `cac:PartyIdentification/cbc:ID` and `cac:PartyName/cbc:Name`.
- Ship-to: `cac:Delivery/cac:DeliveryLocation/cac:Address` (street, city, postal zone, region,
  country), and `cac:Delivery/cac:DeliveryParty` whose `cac:PartyName` is the company (or else
  the recipient's name) and whose `cac:Contact` has the recipient's name, telephone (the
  address's, else the customer's) and e-mail. No `cac:Delivery` at all without a ship-to.
- Lines: `cac:OrderLine/cac:LineItem` with `cbc:ID` = line number, `cbc:Quantity
  unitCode="C62"` (UN/ECE Rec. 20 "one"), `cbc:LineExtensionAmount` and `cac:Price/
  cbc:PriceAmount` only when the unit price is known, and `cac:Item` with the title, the
  seller's SKU (`cac:BuyersItemIdentification`) and the supplier's part number
  (`cac:SellersItemIdentification`) when present.
- A line removed by a change keeps its line number with quantity 0 and `cbc:LineStatusCode`
  "Cancelled" (UBL LineStatusCode list: Added, Cancelled, Disputed, NoStatus, Revised). The
  XSD allows a zero quantity, and `OrderChange` restates the whole order, so the line is sent.

Amounts are written from `Decimal` as they are (never through float), in `doc.currency`.
The same doc always gives the same bytes.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

from lxml import etree

from app.documents.common import parse_untrusted, present
from app.documents.model import (
    Contact,
    DocumentInvalid,
    Party,
    PoLine,
    PostalAddress,
    PurchaseOrderDoc,
)

FORMAT: Final = "ubl"
UBL_VERSION: Final = "2.1"

_NS_BASE: Final = "urn:oasis:names:specification:ubl:schema:xsd:"
CAC: Final = _NS_BASE + "CommonAggregateComponents-2"
CBC: Final = _NS_BASE + "CommonBasicComponents-2"
ORDER_NS: Final = _NS_BASE + "Order-2"
ORDER_CHANGE_NS: Final = _NS_BASE + "OrderChange-2"
ORDER_CANCELLATION_NS: Final = _NS_BASE + "OrderCancellation-2"
NAMESPACES: Final = {"cac": CAC, "cbc": CBC}
_PREFIXES: Final = {
    CAC: "cac:",
    CBC: "cbc:",
    _NS_BASE + "CommonExtensionComponents-2": "ext:",
    ORDER_NS: "",
    ORDER_CHANGE_NS: "",
    ORDER_CANCELLATION_NS: "",
}

UNIT_CODE_ONE: Final = "C62"            # UN/ECE Recommendation 20: "one" (a piece)
REMOVED_LINE_STATUS: Final = "Cancelled"  # UBL LineStatusCode for a line a change removes
DEFAULT_CANCELLATION_NOTE: Final = "The buyer cancelled this order."

SCHEMA_DIR: Final = Path(__file__).parent / "schemas" / "ubl-2.1" / "maindoc"
_SCHEMA_FILES: Final = {
    f"{{{ORDER_NS}}}Order": "UBL-Order-2.1.xsd",
    f"{{{ORDER_CHANGE_NS}}}OrderChange": "UBL-OrderChange-2.1.xsd",
    f"{{{ORDER_CANCELLATION_NS}}}OrderCancellation": "UBL-OrderCancellation-2.1.xsd",
}

# lxml keeps a schema's error log on the XMLSchema object and releases the GIL while it
# validates, so two threads sharing one schema could read each other's errors. The schemas are
# loaded under the same lock, so a burst of first uses parses each one only once.
_VALIDATION_LOCK: Final = threading.Lock()
_MAINDOC_NAMESPACE: Final = re.compile(re.escape("{" + _NS_BASE) + r"[A-Za-z]+-2\}")


# ---------------------------------------------------------------- rendering


def render_ubl(doc: PurchaseOrderDoc) -> bytes:
    """The UBL 2.1 Order, OrderChange or OrderCancellation for `doc`, as UTF-8 XML."""
    if doc.action == "new":
        root = _order(doc)
    elif doc.action == "change":
        root = _order_change(doc)
    elif doc.action == "cancel":
        root = _order_cancellation(doc)
    else:
        raise DocumentInvalid(FORMAT, f"unknown action {doc.action!r}")
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml


def _order(doc: PurchaseOrderDoc) -> etree._Element:
    root = _root(ORDER_NS, "Order")
    _header(root, doc, doc.po_number)
    _optional(root, CBC, "Note", doc.notes)
    _add(root, CBC, "DocumentCurrencyCode", doc.currency)
    _optional(root, CBC, "CustomerReference", doc.order_number)
    _parties(root, doc)
    _delivery(root, doc.ship_to, doc.contact)
    for line in doc.lines:
        _order_line(root, line, doc.currency, in_change=False)
    return root


def _order_change(doc: PurchaseOrderDoc) -> etree._Element:
    root = _root(ORDER_CHANGE_NS, "OrderChange")
    _header(root, doc, _version_id(doc))
    _add(root, CBC, "SequenceNumberID", str(doc.version))
    _optional(root, CBC, "Note", doc.notes)
    _add(root, CBC, "DocumentCurrencyCode", doc.currency)
    _optional(root, CBC, "CustomerReference", doc.order_number)
    _order_reference(root, doc)
    _parties(root, doc)
    _delivery(root, doc.ship_to, doc.contact)
    for line in doc.lines:
        _order_line(root, line, doc.currency, in_change=True)
    return root


def _order_cancellation(doc: PurchaseOrderDoc) -> etree._Element:
    root = _root(ORDER_CANCELLATION_NS, "OrderCancellation")
    _header(root, doc, _version_id(doc))
    # CancellationNote is required; the notes, when there are any, say why.
    _add(root, CBC, "CancellationNote", present(doc.notes) or DEFAULT_CANCELLATION_NOTE)
    _order_reference(root, doc)
    _parties(root, doc)
    return root


def _root(namespace: str, name: str) -> etree._Element:
    nsmap: dict[str | None, str] = {None: namespace, "cac": CAC, "cbc": CBC}
    return etree.Element(f"{{{namespace}}}{name}", nsmap=nsmap)


def _version_id(doc: PurchaseOrderDoc) -> str:
    return f"{doc.po_number}-v{doc.version}"


def _header(root: etree._Element, doc: PurchaseOrderDoc, document_id: str) -> None:
    """UBLVersionID, ID, UUID, IssueDate, IssueTime: the opening of all three documents."""
    issue_date, issue_time = _issue_date_time(doc.issued_at)
    _add(root, CBC, "UBLVersionID", UBL_VERSION)
    _add(root, CBC, "ID", document_id)
    _optional(root, CBC, "UUID", doc.payload_id)
    _add(root, CBC, "IssueDate", issue_date)
    _add(root, CBC, "IssueTime", issue_time)


def _issue_date_time(at: datetime) -> tuple[str, str]:
    # A naive time would be read as the machine's local time: different bytes on each host.
    if at.tzinfo is None or at.utcoffset() is None:
        raise DocumentInvalid(FORMAT, f"issued_at {at.isoformat()} has no time zone")
    utc = at.astimezone(UTC)
    return utc.date().isoformat(), utc.strftime("%H:%M:%SZ")


def _order_reference(root: etree._Element, doc: PurchaseOrderDoc) -> None:
    reference = _add(root, CAC, "OrderReference")
    _add(reference, CBC, "ID", doc.po_number)
    _optional(reference, CBC, "CustomerReference", doc.order_number)


def _parties(root: etree._Element, doc: PurchaseOrderDoc) -> None:
    _party(_add(root, CAC, "BuyerCustomerParty"), doc.buyer)
    _party(_add(root, CAC, "SellerSupplierParty"), doc.supplier)


def _party(role: etree._Element, party: Party) -> None:
    element = _add(role, CAC, "Party")
    _add(_add(element, CAC, "PartyIdentification"), CBC, "ID", party.id)
    _add(_add(element, CAC, "PartyName"), CBC, "Name", party.name)


def _delivery(root: etree._Element, ship_to: PostalAddress | None, contact: Contact | None) -> None:
    if ship_to is None:
        return
    delivery = _add(root, CAC, "Delivery")
    address = _add(_add(delivery, CAC, "DeliveryLocation"), CAC, "Address")
    _optional(address, CBC, "StreetName", ship_to.address1)
    _optional(address, CBC, "AdditionalStreetName", ship_to.address2)
    _optional(address, CBC, "CityName", ship_to.city)
    _optional(address, CBC, "PostalZone", ship_to.postal_code)
    _optional(address, CBC, "CountrySubentity", ship_to.region)
    _optional(address, CBC, "CountrySubentityCode", ship_to.region_code)
    if present(ship_to.country_code) or present(ship_to.country):
        country = _add(address, CAC, "Country")
        _optional(country, CBC, "IdentificationCode", ship_to.country_code)
        _optional(country, CBC, "Name", ship_to.country)

    customer = contact or Contact()
    party_name = present(ship_to.company) or present(ship_to.name) or present(customer.name)
    person = present(ship_to.name) or present(customer.name)
    phone = present(ship_to.phone) or present(customer.phone)
    email = present(customer.email)
    if not (party_name or person or phone or email):
        return
    party = _add(delivery, CAC, "DeliveryParty")
    if party_name:
        _add(_add(party, CAC, "PartyName"), CBC, "Name", party_name)
    if person or phone or email:
        reachable = _add(party, CAC, "Contact")
        _optional(reachable, CBC, "Name", person)
        _optional(reachable, CBC, "Telephone", phone)
        _optional(reachable, CBC, "ElectronicMail", email)


def _order_line(root: etree._Element, line: PoLine, currency: str, *, in_change: bool) -> None:
    item_line = _add(_add(root, CAC, "OrderLine"), CAC, "LineItem")
    _add(item_line, CBC, "ID", str(line.line_number))
    if in_change and line.quantity == 0:
        _add(item_line, CBC, "LineStatusCode", REMOVED_LINE_STATUS)
    _add(item_line, CBC, "Quantity", str(line.quantity), unitCode=UNIT_CODE_ONE)
    if line.unit_price is not None:
        line_amount = line.unit_price * line.quantity
        _add(item_line, CBC, "LineExtensionAmount", _amount(line_amount), currencyID=currency)
        price = _add(item_line, CAC, "Price")
        _add(price, CBC, "PriceAmount", _amount(line.unit_price), currencyID=currency)
    item = _add(item_line, CAC, "Item")
    _add(item, CBC, "Name", line.title)
    if present(line.sku):
        _add(_add(item, CAC, "BuyersItemIdentification"), CBC, "ID", line.sku)
    if present(line.supplier_sku):
        _add(_add(item, CAC, "SellersItemIdentification"), CBC, "ID", line.supplier_sku)


def _amount(value: Decimal) -> str:
    """A Decimal as xsd:decimal text: exact, never in exponent notation."""
    if not value.is_finite():
        raise DocumentInvalid(FORMAT, f"amount {value} is not a number")
    return format(value, "f")


def _optional(parent: etree._Element, namespace: str, name: str, text: str | None) -> None:
    if present(text) is not None:
        _add(parent, namespace, name, text)


def _add(
    parent: etree._Element, namespace: str, name: str, text: str | None = None, **attributes: str
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}", attributes)
    if text is not None:
        try:
            element.text = text
        except ValueError as exc:  # control characters, which XML 1.0 cannot carry
            raise DocumentInvalid(FORMAT, f"{name} {text!r} cannot be written as XML") from exc
    return element


# ---------------------------------------------------------------- validation


def validate_ubl(xml: bytes) -> None:
    """Check `xml` against the official UBL 2.1 schema of its root element."""
    # OrderHub never writes a DTD; one here could only smuggle entities past the schema.
    root = parse_untrusted(xml, FORMAT, doctype_allowed=None)
    filename = _SCHEMA_FILES.get(root.tag)
    if filename is None:
        raise DocumentInvalid(
            FORMAT, f"root element {root.tag} is not a UBL Order, OrderChange or OrderCancellation"
        )
    reason = schema_error(root.getroottree(), filename)
    if reason is not None:
        raise DocumentInvalid(FORMAT, reason)


def schema_error(tree: etree._ElementTree, filename: str) -> str | None:
    """The first error of `tree` against the UBL 2.1 main-document schema `filename` (a file in
    `schemas/ubl-2.1/maindoc/`), as "line N: message" with prefixed names; None when valid.

    Shared with the acknowledgement and shipment-notice parsers (`app/documents/acks.py`,
    `shipment/ubl_format.py`), so every UBL schema is loaded and cached once."""
    with _VALIDATION_LOCK:
        schema = _schema(filename)
        if schema.validate(tree):
            return None
        first = schema.error_log[0]
        return f"line {first.line}: {_short_names(first.message)}"


def _short_names(message: str) -> str:
    """libxml2 names elements as {namespace}Name; write them the way the documents do."""
    for namespace, prefix in _PREFIXES.items():
        message = message.replace(f"{{{namespace}}}", prefix)
    # Any other main document (OrderResponse, ...) is the default namespace of its file.
    return _MAINDOC_NAMESPACE.sub("", message)


@functools.cache
def _schema(filename: str) -> etree.XMLSchema:
    """The schema of one main document, loaded on first use (~0.1 s) and kept; hold the lock."""
    return etree.XMLSchema(file=str(SCHEMA_DIR / filename))
