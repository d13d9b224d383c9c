"""Suppliers' acknowledgements of our purchase orders: pure parsers, no database, no I/O but
reading the bundled schemas.

`parse_acknowledgement(data)` reads one file and tells its format from the root element, never
from the file name:

- cXML `ConfirmationRequest` (`cXML/Request/ConfirmationRequest`, Fulfill.dtd). The DTD is
  neither fetched nor loaded; the structure OrderHub reads is checked by hand.
- UBL 2.1 `OrderResponse`, validated against the official OASIS XSD, and UBL 2.1
  `OrderResponseSimple`, whose XSD is not bundled: its required elements are checked by hand.
- OrderHub's own `PurchaseOrderAcknowledgement` (`urn:orderhub:purchase-order-ack:1`), validated
  against `schemas/orderhub-po-ack-1.xsd` and described for suppliers in FORMATS.md.

Status mappings (see FORMATS.md, "Acknowledgements", for the sources):

- cXML `ConfirmationHeader/@type`: `reject` is rejected; `except`, `backordered` and
  `requestToPay` are changed (accepted, but not as ordered). `accept`, `allDetail` and `detail`
  take their status from the items' `ConfirmationStatus/@type`: none, or all `accept`, is
  accepted; `allDetail` with every item `reject` is rejected; anything else is changed (some
  lines rejected, re-dated, re-priced or backordered, which is how Oracle's cXML mapping reads
  an accepted header with changed lines).
- UBL `cbc:OrderResponseCode` (UN/EDIFACT 4343, the Peppol subset plus AC/AD): AP and AD
  accepted, RE rejected, CA and AC changed; AB (received, not yet processed) and AJ (pending)
  decide nothing and give no acknowledgement. Without a code the response is accepted unless a
  line's `cbc:LineStatusCode` says otherwise (anything but UBL's NoStatus or UNCL 1229 "5",
  accepted without amendment), which makes it changed.
- UBL `OrderResponseSimple/cbc:AcceptedIndicator`: true accepted, false rejected.

The PO version comes from our payload id (`<po number>.v<version>@orderhub`) when the file
quotes it: cXML `OrderReference/DocumentReference/@payloadID`; UBL `cac:OrderReference/
cbc:UUID` (where our UBL documents carry it), else `cac:OrderReference/cac:DocumentReference/
cbc:UUID`; the native format states `Version` itself.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from lxml import etree

from app.documents.common import XmlRefused, first_errors, parse_hardened
from app.documents.ubl import CAC, CBC, schema_error
from app.errors import OrderHubError

AckStatus = Literal["accepted", "rejected", "changed"]  # changed: accepted with changes
AckFormat = Literal["orderhub", "cxml", "ubl"]

MAX_ACK_BYTES: Final = 5 * 1024 * 1024
NAMESPACE: Final = "urn:orderhub:purchase-order-ack:1"
SCHEMA_PATH: Final = Path(__file__).parent / "schemas" / "orderhub-po-ack-1.xsd"
ORDER_RESPONSE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:OrderResponse-2"
ORDER_RESPONSE_SIMPLE_NS: Final = (
    "urn:oasis:names:specification:ubl:schema:xsd:OrderResponseSimple-2"
)
ORDER_RESPONSE_XSD: Final = "UBL-OrderResponse-2.1.xsd"

_NS: Final = {"ack": NAMESPACE, "cac": CAC, "cbc": CBC}
_PAYLOAD_ID: Final = re.compile(r"(?P<po>.+)\.v(?P<version>[1-9][0-9]*)@orderhub")
# The DOCTYPE real cXML files declare (cXML.dtd, Fulfill.dtd, any version); never loaded.
_CXML_DTD: Final = re.compile(r"https?://xml\.cxml\.org/schemas/cxml/[0-9.]+/\w+\.dtd", re.I)
_ZONE: Final = re.compile(r"(?P<value>.*?)(?P<zone>Z|[+-]\d{2}:\d{2})?")

_CXML_CHANGED: Final = frozenset({"except", "backordered", "requestToPay"})
_CXML_BY_ITEM: Final = frozenset({"accept", "allDetail", "detail"})
_CXML_ITEM_TYPES: Final = frozenset({"accept", "reject"}) | _CXML_BY_ITEM | _CXML_CHANGED
_UBL_CODES: Final[dict[str, AckStatus]] = {
    "AP": "accepted", "AD": "accepted", "RE": "rejected", "CA": "changed", "AC": "changed",
}
_UBL_UNDECIDED: Final = frozenset({"AB", "AJ"})
_UBL_UNCHANGED_LINE: Final = frozenset({"NoStatus", "5"})

# An XMLSchema object keeps one error log; validating from two threads at once would mix them.
_SCHEMA_LOCK: Final = threading.Lock()


class AckInvalid(OrderHubError):
    """An acknowledgement file that cannot be read; `reason` says what is wrong and where."""

    def __init__(self, reason: str, fmt: AckFormat | None = None) -> None:
        super().__init__(f"{fmt or 'purchase-order'} acknowledgement invalid: {reason}")
        self.reason = reason
        self.format = fmt


@dataclass(frozen=True)
class Acknowledgement:
    po_number: str                  # our PO number as the supplier quotes it
    version: int | None             # the PO version acknowledged, when the file says
    payload_id: str | None          # our document's payload id, when quoted
    status: AckStatus
    supplier_reference: str | None  # the supplier's own order or confirmation number
    note: str | None
    issued_at: datetime | None      # aware UTC; None when the file gives no time zone
    format: AckFormat


def parse_acknowledgement(data: bytes) -> list[Acknowledgement]:
    """The acknowledgements in one file (cXML, UBL or OrderHub's own); raises `AckInvalid`."""
    if len(data) > MAX_ACK_BYTES:
        raise AckInvalid(f"the file has {len(data)} bytes, more than the {MAX_ACK_BYTES} allowed")
    if not data.strip():
        raise AckInvalid("the file is empty")
    try:
        root = parse_hardened(data)
    except XmlRefused as exc:
        raise AckInvalid(str(exc)) from None
    docinfo = root.getroottree().docinfo
    if root.tag == "cXML":
        if docinfo.system_url is not None and not _CXML_DTD.fullmatch(docinfo.system_url):
            raise AckInvalid(f"unexpected DOCTYPE SYSTEM identifier {docinfo.system_url!r}", "cxml")
        return [_read_cxml(root)]
    reader = _UBL_AND_NATIVE.get(root.tag)
    if reader is None:
        qname = etree.QName(root)
        where = f" in namespace {qname.namespace!r}" if qname.namespace else " (no namespace)"
        raise AckInvalid(
            f"unknown root element {qname.localname!r}{where}; expected a cXML "
            "ConfirmationRequest, a UBL 2.1 OrderResponse or OrderResponseSimple, or an OrderHub "
            "PurchaseOrderAcknowledgement"
        )
    if docinfo.doctype:
        raise AckInvalid(f"{etree.QName(root).localname} must not declare a DOCTYPE")
    return reader(root)


# ---------------------------------------------------------------- cXML ConfirmationRequest


def _read_cxml(root: etree._Element) -> Acknowledgement:
    for attribute in ("payloadID", "timestamp"):
        _attribute(root, attribute, "cXML")
    _child(root, "Header", "cXML")
    request = _child(root, "Request", "cXML")
    confirmation = request.find("ConfirmationRequest")
    if confirmation is None:
        found = ", ".join(str(child.tag) for child in request if isinstance(child.tag, str))
        raise AckInvalid(f"cXML/Request holds {found or 'nothing'} (line {request.sourceline}), "
                         "not a ConfirmationRequest", "cxml")
    path = "cXML/Request/ConfirmationRequest"
    header = _child(confirmation, "ConfirmationHeader", path)
    kind = _attribute(header, "type", f"{path}/ConfirmationHeader")
    notice_date = _attribute(header, "noticeDate", f"{path}/ConfirmationHeader")
    operation = header.get("operation", "new")
    if operation not in ("new", "update"):
        raise AckInvalid(f"{path}/ConfirmationHeader/@operation {operation!r} (line "
                         f"{header.sourceline}) is not supported: only new or update", "cxml")
    reference = _child(confirmation, "OrderReference", path)
    document = _child(reference, "DocumentReference", f"{path}/OrderReference")
    payload_id = _clean(document.get("payloadID"))
    where = f"{path}/OrderReference (line {reference.sourceline})"
    po_number, version = _resolve(_clean(reference.get("orderID")), payload_id, where, "cxml")

    items: list[str] = []
    for item_status in confirmation.iterfind("ConfirmationItem/ConfirmationStatus"):
        item_type = _attribute(item_status, "type", f"{path}/ConfirmationItem/ConfirmationStatus")
        if item_type not in _CXML_ITEM_TYPES:
            raise AckInvalid(f"ConfirmationStatus/@type {item_type!r} (line "
                             f"{item_status.sourceline}) is not a cXML confirmation type", "cxml")
        items.append(item_type)

    order_number = next((_clean("".join(extrinsic.itertext()))
                         for extrinsic in header.iterfind("Extrinsic")
                         if (extrinsic.get("name") or "").lower() == "supplierordernumber"), None)
    comments = ["".join(comment.xpath("text()")) for comment in header.iterfind("Comments")]
    return Acknowledgement(
        po_number=po_number,
        version=version,
        payload_id=payload_id,
        status=_cxml_status(kind, items, header),
        supplier_reference=order_number or _clean(header.get("confirmID")),
        note=_joined(comments),
        issued_at=_instant(notice_date, f"{path}/ConfirmationHeader/@noticeDate (line "
                                        f"{header.sourceline})", "cxml"),
        format="cxml",
    )


def _cxml_status(kind: str, items: list[str], header: etree._Element) -> AckStatus:
    if kind == "reject":
        return "rejected"
    if kind in _CXML_CHANGED:
        return "changed"
    if kind not in _CXML_BY_ITEM:
        known = ", ".join(sorted(_CXML_BY_ITEM | _CXML_CHANGED | {"reject"}))
        raise AckInvalid(f"ConfirmationHeader/@type {kind!r} (line {header.sourceline}) is not "
                         f"supported; expected one of {known}", "cxml")
    if all(item == "accept" for item in items):
        return "accepted"
    if kind == "allDetail" and all(item == "reject" for item in items):
        return "rejected"
    return "changed"


# ---------------------------------------------------------------- UBL


def _read_order_response(root: etree._Element) -> list[Acknowledgement]:
    # Checked first: libxml2 lists only ten expected elements, and would not name this one.
    _child(root, "cac:OrderReference", "OrderResponse", fmt="ubl")
    reason = schema_error(root.getroottree(), ORDER_RESPONSE_XSD)
    if reason is not None:
        raise AckInvalid(reason, "ubl")
    code = _text(root, "cbc:OrderResponseCode")
    if code is None:
        lines = (_text(line, "cbc:LineStatusCode") for line in
                 root.iterfind("cac:OrderLine/cac:LineItem", _NS))
        changed = any(line not in _UBL_UNCHANGED_LINE for line in lines if line is not None)
        status: AckStatus = "changed" if changed else "accepted"
    elif code in _UBL_UNDECIDED:
        return []  # received, no decision yet: nothing to apply
    elif code in _UBL_CODES:
        status = _UBL_CODES[code]
    else:
        element = root.find("cbc:OrderResponseCode", _NS)
        raise AckInvalid(f"cbc:OrderResponseCode {code!r} (line {element.sourceline}) is not "
                         "one of AP, AD, CA, AC, RE, AB, AJ (UN/EDIFACT 4343)", "ubl")
    notes = [element.text or "" for element in root.iterfind("cbc:Note", _NS)]
    return _ubl_acks(root, "OrderResponse", status, _joined(notes))


def _read_order_response_simple(root: etree._Element) -> list[Acknowledgement]:
    # UBL 2.1 requires these; the XSD is not bundled, so they are checked here.
    for name in ("cbc:ID", "cbc:IssueDate", "cbc:AcceptedIndicator", "cac:OrderReference",
                 "cac:SellerSupplierParty", "cac:BuyerCustomerParty"):
        _child(root, name, "OrderResponseSimple", fmt="ubl")
    indicator = _text(root, "cbc:AcceptedIndicator")
    if indicator not in ("true", "1", "false", "0"):
        raise AckInvalid(f"OrderResponseSimple/cbc:AcceptedIndicator {indicator!r} is not "
                         "true or false", "ubl")
    status: AckStatus = "accepted" if indicator in ("true", "1") else "rejected"
    notes = [element.text or "" for element in root.iterfind("cbc:Note", _NS)]
    notes += [element.text or "" for element in root.iterfind("cbc:RejectionNote", _NS)]
    return _ubl_acks(root, "OrderResponseSimple", status, _joined(notes))


def _ubl_acks(root: etree._Element, name: str, status: AckStatus,
              note: str | None) -> list[Acknowledgement]:
    """One acknowledgement per distinct order the response refers to."""
    issued_at = _ubl_instant(_text(root, "cbc:IssueDate"), _text(root, "cbc:IssueTime"), name)
    response_id = _text(root, "cbc:ID")
    acks: dict[tuple[str, int | None, str | None], Acknowledgement] = {}
    for reference in root.iterfind("cac:OrderReference", _NS):
        payload_id = (_text(reference, "cbc:UUID")
                      or _text(reference, "cac:DocumentReference/cbc:UUID"))
        where = f"{name}/cac:OrderReference (line {reference.sourceline})"
        po_number, version = _resolve(_text(reference, "cbc:ID"), payload_id, where, "ubl")
        supplier_reference = (_text(root, "cbc:SalesOrderID")
                              or _text(reference, "cbc:SalesOrderID") or response_id)
        acks.setdefault((po_number, version, payload_id), Acknowledgement(
            po_number, version, payload_id, status, supplier_reference, note, issued_at, "ubl"))
    return list(acks.values())


def _ubl_instant(date: str | None, time: str | None, name: str) -> datetime | None:
    """cbc:IssueDate and cbc:IssueTime as one instant; None without a time or a time zone."""
    if date is None or time is None:
        return None
    date_match, time_match = _ZONE.fullmatch(date), _ZONE.fullmatch(time)
    assert date_match is not None and time_match is not None  # the pattern matches anything
    zone = time_match["zone"] or date_match["zone"]
    if zone is None:
        return None
    moment = f"{date_match['value']}T{time_match['value']}{zone}"
    return _instant(moment, f"{name}/cbc:IssueDate and cbc:IssueTime", "ubl")


# ---------------------------------------------------------------- OrderHub's own format


def _read_native(root: etree._Element) -> list[Acknowledgement]:
    with _SCHEMA_LOCK:
        schema = _native_schema()
        if not schema.validate(root):
            reason = first_errors(schema.error_log).replace(f"{{{NAMESPACE}}}", "")
            raise AckInvalid(reason, "orderhub")
    acks = []
    for element in root.iterfind("ack:Acknowledgement", _NS):
        issued_at = _text(element, "ack:IssuedAt")
        where = f"Acknowledgement/IssuedAt (line {element.sourceline})"
        acks.append(Acknowledgement(
            po_number=_required_text(element, "ack:PoNumber"),
            version=int(_required_text(element, "ack:Version")),
            payload_id=None,
            status=_native_status(_required_text(element, "ack:Status")),
            supplier_reference=_text(element, "ack:SupplierReference"),
            note=_text(element, "ack:Note"),
            issued_at=_instant(issued_at, where, "orderhub") if issued_at else None,
            format="orderhub",
        ))
    return acks


def _native_status(value: str) -> AckStatus:
    # The schema's enumeration; spelled out so that mypy sees the Literal.
    if value == "accepted":
        return "accepted"
    if value == "rejected":
        return "rejected"
    return "changed"


@functools.cache
def _native_schema() -> etree.XMLSchema:
    """The XSD, read once on first use (importing this module opens no file); hold the lock."""
    return etree.XMLSchema(file=str(SCHEMA_PATH))


_UBL_AND_NATIVE: Final[dict[str, Callable[[etree._Element], list[Acknowledgement]]]] = {
    f"{{{ORDER_RESPONSE_NS}}}OrderResponse": _read_order_response,
    f"{{{ORDER_RESPONSE_SIMPLE_NS}}}OrderResponseSimple": _read_order_response_simple,
    f"{{{NAMESPACE}}}PurchaseOrderAcknowledgement": _read_native,
}


# ---------------------------------------------------------------- shared


def _resolve(quoted: str | None, payload_id: str | None, where: str,
             fmt: AckFormat) -> tuple[str, int | None]:
    """The PO number and version from the quoted PO number and our payload id.

    The payload id, when it is ours, also names the PO: the two must agree. A UBL response may
    quote our OrderChange's document id, "<po number>-v<version>"."""
    ours = _PAYLOAD_ID.fullmatch(payload_id) if payload_id else None
    if ours is None:
        if quoted is None:
            raise AckInvalid(f"{where} names no PO number", fmt)
        return quoted, None
    po_number, version = ours["po"], int(ours["version"])
    if quoted is not None and quoted not in (po_number, f"{po_number}-v{version}"):
        raise AckInvalid(f"{where} names PO {quoted!r} but quotes payload id {payload_id!r} "
                         f"of PO {po_number!r}", fmt)
    return po_number, version


def _instant(text: str, where: str, fmt: AckFormat) -> datetime | None:
    """An ISO 8601 date and time as aware UTC; None when it has no time zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AckInvalid(f"{where} {text!r} is not an ISO 8601 date and time", fmt) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None  # local time of an unknown zone: better no time than a wrong one
    return moment.astimezone(UTC)


def _child(parent: etree._Element, name: str, path: str,
           fmt: AckFormat = "cxml") -> etree._Element:
    element = parent.find(name, _NS)
    if element is None:
        raise AckInvalid(f"{path} (line {parent.sourceline}) has no {name}", fmt)
    return element


def _attribute(element: etree._Element, name: str, path: str) -> str:
    value = _clean(element.get(name))
    if value is None:
        raise AckInvalid(f"{path}/@{name} is missing or empty (line {element.sourceline})",
                         "cxml")
    return value


def _text(parent: etree._Element, path: str) -> str | None:
    element = parent.find(path, _NS)
    return None if element is None else _clean(element.text)


def _required_text(parent: etree._Element, path: str) -> str:
    text = _text(parent, path)
    assert text is not None, f"{path} is required by the schema"
    return text


def _clean(value: str | None) -> str | None:
    """`value` without surrounding white space, or None when nothing is left."""
    value = value.strip() if value is not None else None
    return value or None


def _joined(texts: list[str]) -> str | None:
    """Several free-text notes as one, blank ones left out."""
    return "\n".join(text for text in (_clean(t) for t in texts) if text) or None
