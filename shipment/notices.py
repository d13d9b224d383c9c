"""Suppliers' shipment notices: pure parsers, no database, no I/O but reading the bundled
schemas. `parse_notice(data, name=...)` reads one downloaded file and returns what it says
shipped, one `ShipmentNotice` per purchase order (see `shipment.model`).

The format:

- a name ending in `.csv` is CSV (`shipment.csv_format`); a name ending in `.xml` is XML;
  otherwise bytes starting with `<` (after a byte-order mark and white space) are XML and
  anything else is CSV;
- an XML file's root element decides: `cXML` holding a `ShipNoticeRequest`
  (`shipment.cxml_format`), UBL 2.1 `DespatchAdvice` (`shipment.ubl_format`), or OrderHub's
  `ShipmentNotice` in `urn:orderhub:shipment-notice:1` (`shipment.native_format`).

Every file is checked for size (`MAX_NOTICE_BYTES`, 20 MB) before it is parsed, and XML is
parsed by `app.documents.common.parse_hardened`: no DTD is loaded, no entity resolved, nothing
fetched, and a DOCTYPE declaring entities or elements is refused. Only cXML may have a DOCTYPE,
naming the cXML DTD, which is never loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from lxml import etree

from app.documents.common import XmlRefused, parse_hardened
from shipment.csv_format import read_csv
from shipment.cxml_format import read_cxml
from shipment.model import (
    MAX_NOTICE_BYTES,
    CsvColumns,
    NoticeFormat,
    NoticeInvalid,
    Package,
    ShipmentNotice,
    ShippedLine,
)
from shipment.native_format import NAMESPACE, read_native
from shipment.ubl_format import DESPATCH_ADVICE_NS, read_ubl

__all__ = [
    "MAX_NOTICE_BYTES",
    "CsvColumns",
    "DEFAULT_COLUMNS",
    "NoticeFormat",
    "NoticeInvalid",
    "Package",
    "ShipmentNotice",
    "ShippedLine",
    "parse_notice",
]

DEFAULT_COLUMNS: Final = CsvColumns()  # frozen: safe to share as the default

_BOMS: Final = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_XML_READERS: Final[dict[str, Callable[[etree._Element], list[ShipmentNotice]]]] = {
    "cXML": read_cxml,
    f"{{{DESPATCH_ADVICE_NS}}}DespatchAdvice": read_ubl,
    f"{{{NAMESPACE}}}ShipmentNotice": read_native,
}


def parse_notice(data: bytes, *, name: str,
                 columns: CsvColumns = DEFAULT_COLUMNS) -> list[ShipmentNotice]:
    """The shipment notices in one file named `name` (CSV with `columns`, cXML, UBL or
    OrderHub's own); raises `NoticeInvalid`."""
    if len(data) > MAX_NOTICE_BYTES:
        raise NoticeInvalid(f"the file has {len(data)} bytes, more than the "
                            f"{MAX_NOTICE_BYTES} allowed")
    if not data.strip():
        raise NoticeInvalid("the file is empty")
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == "csv" or (suffix != "xml" and not _looks_like_xml(data)):
        return read_csv(data, columns)
    return _read_xml(data)


def _looks_like_xml(data: bytes) -> bool:
    start = data[:64]
    for bom in _BOMS:
        if start.startswith(bom):
            start = start[len(bom):]
            if bom != _BOMS[0]:  # UTF-16: every other byte is 0 in the ASCII range
                start = start.replace(b"\x00", b"")
            break
    return start.lstrip().startswith(b"<")


def _read_xml(data: bytes) -> list[ShipmentNotice]:
    try:
        root = parse_hardened(data)
    except XmlRefused as exc:
        raise NoticeInvalid(str(exc)) from None
    reader = _XML_READERS.get(root.tag)
    if reader is None:
        qname = etree.QName(root)
        where = f" in namespace {qname.namespace!r}" if qname.namespace else " (no namespace)"
        raise NoticeInvalid(
            f"unknown root element {qname.localname!r}{where}; expected a cXML "
            "ShipNoticeRequest, a UBL 2.1 DespatchAdvice or an OrderHub ShipmentNotice "
            f"({NAMESPACE})")
    return reader(root)
