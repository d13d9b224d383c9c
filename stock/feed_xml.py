"""Stock feeds as XML, read as a stream: a UBL 2.1 `InventoryReport` or OrderHub's own
`StockFeed` (`urn:orderhub:stock-feed:1`), described for suppliers in app/documents/FORMATS.md.

The file is parsed with lxml's `iterparse` as hardened as `app.documents.common.parse_hardened`
(no DTD loaded, no entity resolved, nothing fetched, libxml2's size limits kept), and every line
is dropped from memory once read, so a feed of any size needs memory for one line at a time.
A DOCTYPE of any kind is refused: neither format has one, and it is where entities (XXE,
"billion laughs") would be declared.

Validation. A schema validator needs the whole tree in memory, so a streamed feed is not
checked against its XSD. Instead, while reading, OrderHub checks the structure the XSD gives
the parts it relies on: the root element, the order and number of the root's children (UBL:
ID, IssueDate, the two required parties before the first line, one line or more; native: only
`Item`s and a valid `asOf`), and in each line the elements of `cac:InventoryReportLine` in
their order (ID, Note*, Quantity, InventoryValueAmount?, AvailabilityDate?,
AvailabilityStatusCode?, Item, InventoryLocation?) or the attributes of `Item`. What is
wrong at the root level makes the feed invalid (`FeedInvalid`); what is wrong in one line makes
that line a bad row, as in a CSV file. The inside of `cac:Item`, the parties and the other
header elements are not checked beyond what is read. `schema_problem` validates a whole file
against the XSD in memory, for files up to `MAX_VALIDATED_BYTES` (a supplier's sample); the
reader itself never does, so a feed is judged the same whatever its size.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO, Final

from lxml import etree

from app.documents.common import XmlRefused, first_errors, parse_hardened
from app.documents.ubl import schema_error
from stock.feed_model import FeedInvalid, FeedProblems, FeedRow
from stock.feed_values import csv_quantity, xml_date, xml_instant, xml_quantity, zoned_instant

_UBL: Final = "urn:oasis:names:specification:ubl:schema:xsd:"
INVENTORY_REPORT_NS: Final = _UBL + "InventoryReport-2"
CAC: Final = _UBL + "CommonAggregateComponents-2"
CBC: Final = _UBL + "CommonBasicComponents-2"
EXT: Final = _UBL + "CommonExtensionComponents-2"
NATIVE_NS: Final = "urn:orderhub:stock-feed:1"
_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"

UBL_ROOT: Final = f"{{{INVENTORY_REPORT_NS}}}InventoryReport"
NATIVE_ROOT: Final = f"{{{NATIVE_NS}}}StockFeed"
UBL_SCHEMA: Final = "UBL-InventoryReport-2.1.xsd"
NATIVE_SCHEMA_PATH: Final = (Path(__file__).parents[1] / "app" / "documents" / "schemas"
                             / "orderhub-stock-feed-1.xsd")
MAX_VALIDATED_BYTES: Final = 5 * 1024 * 1024

# UN/ECE Recommendation 20 codes that count single pieces: one, piece, each, number of articles.
# A quantity in kilograms or packs of twelve is not a number of units to sell.
PIECE_UNITS: Final = frozenset({"C62", "H87", "EA", "NAR"})

_PARSER_OPTIONS: Final = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}

Part = tuple[str, int, int | None]  # (tag, at least, at most; None: unbounded)


def _cbc(name: str) -> str:
    return f"{{{CBC}}}{name}"


def _cac(name: str) -> str:
    return f"{{{CAC}}}{name}"


_LINE: Final = _cac("InventoryReportLine")
_ID: Final = _cbc("ID")
_QUANTITY: Final = _cbc("Quantity")
_AVAILABILITY_DATE: Final = _cbc("AvailabilityDate")
_ITEM: Final = _cac("Item")
_LOCATION: Final = _cac("InventoryLocation")
_SELLERS_ID: Final = _cac("SellersItemIdentification")
_BUYERS_ID: Final = _cac("BuyersItemIdentification")
_ISSUE: Final = {_cbc("IssueDate"): "IssueDate", _cbc("IssueTime"): "IssueTime"}
# The children of InventoryReport, in the order of UBL-InventoryReport-2.1.xsd.
_REPORT_PARTS: Final[tuple[Part, ...]] = (
    (f"{{{EXT}}}UBLExtensions", 0, 1), (_cbc("UBLVersionID"), 0, 1),
    (_cbc("CustomizationID"), 0, 1), (_cbc("ProfileID"), 0, 1),
    (_cbc("ProfileExecutionID"), 0, 1), (_cbc("ID"), 1, 1), (_cbc("CopyIndicator"), 0, 1),
    (_cbc("UUID"), 0, 1), (_cbc("IssueDate"), 1, 1), (_cbc("IssueTime"), 0, 1),
    (_cbc("Note"), 0, None), (_cbc("DocumentCurrencyCode"), 0, 1),
    (_cac("InventoryPeriod"), 0, 1), (_cac("DocumentReference"), 0, None),
    (_cac("Signature"), 0, None), (_cac("RetailerCustomerParty"), 1, 1),
    (_cac("InventoryReportingParty"), 1, 1), (_cac("SellerSupplierParty"), 0, 1),
    (_LINE, 1, None),
)
# The children of InventoryReportLine (InventoryReportLineType in the common aggregates).
_LINE_PARTS: Final[tuple[Part, ...]] = (
    (_cbc("ID"), 1, 1), (_cbc("Note"), 0, None), (_cbc("Quantity"), 1, 1),
    (_cbc("InventoryValueAmount"), 0, 1), (_cbc("AvailabilityDate"), 0, 1),
    (_cbc("AvailabilityStatusCode"), 0, 1), (_cac("Item"), 1, 1),
    (_cac("InventoryLocation"), 0, 1),
)
_PREFIXES: Final = {CAC: "cac:", CBC: "cbc:", EXT: "ext:", INVENTORY_REPORT_NS: "",
                    NATIVE_NS: ""}
_NATIVE_ITEM: Final = f"{{{NATIVE_NS}}}Item"
_NATIVE_ATTRIBUTES: Final = frozenset({"sku", "quantity", "warehouse", "eta"})

# An XMLSchema object keeps one error log; validating from two threads at once would mix them.
_SCHEMA_LOCK: Final = threading.Lock()


def read_xml(stream: IO[bytes], *, problems: FeedProblems) -> Iterator[FeedRow]:
    """The rows of one XML feed (UBL InventoryReport or native StockFeed), as they are read;
    bad lines go to `problems`."""
    # End events only: half the events of start+end, and an element is complete at its end.
    events = etree.iterparse(stream, events=("end",), **_PARSER_OPTIONS)
    try:
        first = next(events, None)
        if first is None:
            raise FeedInvalid("the document has no root element")
        root = first[1].getroottree().getroot()
        events = itertools.chain((first,), events)
        if root.getroottree().docinfo.doctype:
            raise FeedInvalid("the document declares a DOCTYPE; stock feeds must not have one "
                              "(entities and external DTDs are never read)")
        if root.tag == UBL_ROOT:
            problems.format = "ubl"
            yield from _read_ubl(root, events, problems)
        elif root.tag == NATIVE_ROOT:
            problems.format = "orderhub"
            yield from _read_native(root, events, problems)
        else:
            qname = etree.QName(root)
            where = (f" in namespace {qname.namespace!r}" if qname.namespace
                     else " (no namespace)")
            raise FeedInvalid(
                f"unknown root element {qname.localname!r}{where}; expected a UBL 2.1 "
                f"InventoryReport or an OrderHub StockFeed ({NATIVE_NS})")
    except etree.XMLSyntaxError as exc:
        raise FeedInvalid(f"not well-formed XML: {_first_error(exc)}") from None


def _first_error(exc: etree.XMLSyntaxError) -> str:
    """What the parser says is wrong. At the end of the input iterparse may raise only a
    summary without a position ("no element found"); the error behind it is then the last
    one in the parser's log."""
    if exc.lineno or not len(exc.error_log):
        return str(exc)
    last = exc.error_log.last_error
    return f"line {last.line}: {last.message.strip()}"


class _Sequence:
    """Checks, one child at a time, that elements come in the order and number of an XSD
    sequence whose parts all have different names."""

    def __init__(self, parts: tuple[Part, ...], parent: str) -> None:
        self._parts = parts
        self._parent = parent
        self._at = 0
        self._count = 0

    def place(self, tag: str) -> str | None:
        """None if `tag` may come next, else what is wrong."""
        while self._at < len(self._parts):
            name, least, most = self._parts[self._at]
            if tag == name:
                if most is not None and self._count >= most:
                    return f"{_short(tag)} appears more than {most} time(s) in {self._parent}"
                self._count += 1
                return None
            if self._count < least:
                return f"{_short(tag)} found where {self._parent} needs {_short(name)}"
            self._at, self._count = self._at + 1, 0
        return f"{_short(tag)} is not expected at this place in {self._parent}"

    def missing(self) -> str | None:
        """After the last child: the first required part that never came, if any."""
        at, count = self._at, self._count
        for name, least, _ in self._parts[at:]:
            if count < least:
                return f"{self._parent} has no {_short(name)}"
            count = 0
        return None


def _short(tag: str) -> str:
    qname = etree.QName(tag)
    return f"{_PREFIXES.get(qname.namespace or '', '')}{qname.localname}"


def _done(root: etree._Element, element: etree._Element) -> None:
    """Forget a child of the root once read: a feed of any size keeps one line in memory."""
    element.clear(keep_tail=False)
    root.remove(element)


# ---------------------------------------------------------------- UBL InventoryReport


def _read_ubl(root: etree._Element, events: Iterator[tuple[str, etree._Element]],
              problems: FeedProblems) -> Iterator[FeedRow]:
    sequence = _Sequence(_REPORT_PARTS, "InventoryReport")
    issue: dict[str, tuple[str | None, int]] = {}  # IssueDate / IssueTime: (text, line)
    issued = False
    for _, element in events:
        if element.getparent() is not root:
            if element is root:
                problem = sequence.missing()
                if problem is not None:
                    raise FeedInvalid(problem)
            continue
        tag = element.tag
        problem = sequence.place(tag)
        if problem is not None:
            raise FeedInvalid(f"line {element.sourceline}: {problem}")
        if tag == _LINE:
            if not issued:
                _issued(issue, problems)
                issued = True
            row = _ubl_line(element, problems)
            if row is not None:
                problems.rows += 1
                yield row
        elif tag in _ISSUE:
            issue[_ISSUE[tag]] = (element.text, element.sourceline)
        _done(root, element)


def _issued(issue: dict[str, tuple[str | None, int]], problems: FeedProblems) -> None:
    """The report's IssueDate and IssueTime as `as_of`; unreadable, they void the feed."""
    day, line = issue.get("IssueDate", (None, 0))
    time = issue.get("IssueTime", (None, 0))[0]
    moment = xml_instant(day, time)
    if isinstance(moment, str):
        written = f"{(day or '').strip()} {(time or '').strip()}".strip()
        raise FeedInvalid(f"line {line}: cbc:IssueDate/cbc:IssueTime {written!r} {moment}")
    problems.saw_as_of(moment)


def _ubl_line(line: etree._Element, problems: FeedProblems) -> FeedRow | None:
    """One InventoryReportLine as a row, or None when it is a bad row (counted)."""
    sequence = _Sequence(_LINE_PARTS, "cac:InventoryReportLine")
    problem = None
    parts: dict[str, etree._Element] = {}
    for child in line:
        problem = problem or sequence.place(child.tag)
        parts[child.tag] = child
    problem = problem or sequence.missing()
    label = f"line {line.sourceline}: cac:InventoryReportLine {_id(parts.get(_ID)) or '?'}"
    item = parts.get(_ITEM)
    sku = _id(_child(item, _SELLERS_ID))
    if problem is not None:
        problems.bad_row(f"{label}: {problem}", sku)
        return None
    if sku is None:
        problems.bad_row(f"{label}: cac:Item has no cac:SellersItemIdentification/cbc:ID "
                         "(your SKU)")
        return None
    quantity_element = parts[_QUANTITY]
    quantity = xml_quantity(quantity_element.text)
    if isinstance(quantity, str):
        problems.bad_row(f"{label}: cbc:Quantity {_shown(quantity_element.text)}{quantity}", sku)
        return None
    unit = quantity_element.get("unitCode")
    if unit is not None and unit.strip() not in PIECE_UNITS:
        problems.bad_row(f"{label}: cbc:Quantity unitCode {unit!r} is not a count of pieces "
                         f"({', '.join(sorted(PIECE_UNITS))})", sku)
        return None
    eta: date | None = None
    available = parts.get(_AVAILABILITY_DATE)
    if available is not None:
        day = xml_date(available.text)
        if isinstance(day, str):
            problems.bad_row(f"{label}: cbc:AvailabilityDate {_shown(available.text)}{day}", sku)
            return None
        eta = day
    return FeedRow(sku, quantity, _id(parts.get(_LOCATION)), eta, line.sourceline,
                   _id(_child(item, _BUYERS_ID)))


def _child(element: etree._Element | None, tag: str) -> etree._Element | None:
    """The first child of `element` named `tag`."""
    if element is not None:
        for child in element:
            if child.tag == tag:
                return child
    return None


def _id(element: etree._Element | None) -> str | None:
    """The stripped text of `element` if it is a cbc:ID, else of its cbc:ID child; None when
    absent or blank."""
    if element is not None and element.tag != _ID:
        element = _child(element, _ID)
    text = element.text.strip() if element is not None and element.text else ""
    return text or None


def _shown(text: str | None) -> str:
    return f"{text.strip()!r} " if text and text.strip() else ""


# ---------------------------------------------------------------- OrderHub StockFeed


def _read_native(root: etree._Element, events: Iterator[tuple[str, etree._Element]],
                 problems: FeedProblems) -> Iterator[FeedRow]:
    _native_as_of(root, problems)
    for _, element in events:
        if element.getparent() is not root:
            continue  # the root's end, or inside an Item (which must be empty: see its end)
        if element.tag != _NATIVE_ITEM:
            raise FeedInvalid(f"line {element.sourceline}: {_short(element.tag)} is not "
                              "expected in StockFeed, which holds only Item elements")
        row = _native_item(element, problems)
        if row is not None:
            problems.rows += 1
            yield row
        _done(root, element)


def _native_as_of(root: etree._Element, problems: FeedProblems) -> None:
    where = f"line {root.sourceline}: StockFeed"
    unknown = [name for name in root.attrib
               if name != "asOf" and etree.QName(name).namespace != _XSI]
    if unknown:
        raise FeedInvalid(f"{where} has the unknown attribute(s) {', '.join(unknown)}; only "
                          "asOf is allowed")
    text = root.get("asOf")
    if text is None or not text.strip():
        raise FeedInvalid(f"{where} has no asOf: when was the stock counted?")
    moment = zoned_instant(text)
    if isinstance(moment, str):
        raise FeedInvalid(f"{where} asOf {text!r} {moment}")
    problems.saw_as_of(moment)


def _native_item(item: etree._Element, problems: FeedProblems) -> FeedRow | None:
    label = f"line {item.sourceline}: Item"
    sku = (item.get("sku") or "").strip() or None
    unknown = sorted(name for name in item.attrib if name not in _NATIVE_ATTRIBUTES)
    if unknown:
        problems.bad_row(f"{label} has the unknown attribute(s) {', '.join(unknown)}", sku)
        return None
    if len(item) or (item.text or "").strip():
        problems.bad_row(f"{label} must be empty: everything is in its attributes", sku)
        return None
    if sku is None:
        problems.bad_row(f"{label} has no sku")
        return None
    text = (item.get("quantity") or "").strip()
    quantity = csv_quantity(text[1:] if text.startswith("+") else text)
    if isinstance(quantity, str):
        problems.bad_row(f"{label} quantity {_shown(text)}{quantity}", sku)
        return None
    eta: date | None = None
    written = item.get("eta")
    if written is not None:
        day = xml_date(written)
        if isinstance(day, str):
            problems.bad_row(f"{label} eta {_shown(written)}{day}", sku)
            return None
        eta = day
    return FeedRow(sku=sku, quantity=quantity, warehouse=(item.get("warehouse") or "").strip()
                   or None, eta=eta, line=item.sourceline)


# ---------------------------------------------------------------- whole-file validation


def schema_problem(data: bytes) -> str | None:
    """The first error of a whole XML feed against its XSD (the official UBL 2.1
    InventoryReport schema or orderhub-stock-feed-1.xsd), as "line N: message"; None when
    valid. For a supplier's sample up to `MAX_VALIDATED_BYTES`: it holds the tree in memory."""
    if len(data) > MAX_VALIDATED_BYTES:
        raise ValueError(f"{len(data)} bytes is more than the {MAX_VALIDATED_BYTES} "
                         "validated in memory")
    try:
        root = parse_hardened(data)
    except XmlRefused as exc:
        return str(exc)
    if root.getroottree().docinfo.doctype:
        return "the document declares a DOCTYPE"
    if root.tag == UBL_ROOT:
        return schema_error(root.getroottree(), UBL_SCHEMA)
    if root.tag == NATIVE_ROOT:
        with _SCHEMA_LOCK:
            schema = _native_schema()
            if schema.validate(root):
                return None
            return first_errors(schema.error_log, limit=1).replace(f"{{{NATIVE_NS}}}", "")
    return f"root element {_short(root.tag)} is not a stock feed"


@functools.cache
def _native_schema() -> etree.XMLSchema:
    """orderhub-stock-feed-1.xsd, loaded on first use and kept; hold the lock."""
    return etree.XMLSchema(file=str(NATIVE_SCHEMA_PATH))
