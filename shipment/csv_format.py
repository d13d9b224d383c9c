"""Shipment notices as CSV: one row per shipped line, described for suppliers in
app/documents/FORMATS.md ("Shipment notices as CSV").

- Encoding: UTF-8, with or without a byte-order mark; other bytes are refused with the line.
- Delimiter: `,`, `;` or tab, whichever splits the header line into the most columns.
- Header: required; names matched ignoring case and surrounding white space, as configured per
  supplier (`CsvColumns`). Required: po_number, quantity, and sku or line_number (or both);
  optional: carrier, tracking_number, tracking_url, shipped_at, supplier_sku, shipment_id.
  Other columns are ignored.
- Values: quantity is a whole number above 0 written with digits only ("1.000" could mean one
  or a thousand); line_number 1, 2, ...; shipped_at an ISO 8601 date (midnight UTC) or date
  and time (without a zone: UTC); tracking_url http or https. Blank rows are skipped.

Grouping: rows become one `ShipmentNotice` per purchase order and shipment. With a
`shipment_id` on the row, the shipment is (PO, shipment_id) and its packages are the distinct
tracking numbers of its rows; without one, each tracking number of a PO is its own notice with
one package, and the PO's rows without a tracking number form one more. Every row is in exactly
one notice, so no line is counted twice. Rows of one notice must not contradict each other on
shipped_at, nor rows of one package on carrier or tracking_url (a blank value says nothing).
A file with a header and no rows gives no notice.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Final

from shipment.fields import clean, instant, line_number, resolve_order, tracking_url
from shipment.model import CsvColumns, NoticeInvalid, Package, ShipmentNotice, ShippedLine

_DELIMITERS: Final = (",", ";", "\t")
_REQUIRED: Final = ("po_number", "quantity")
_IDENTIFYING: Final = ("sku", "line_number")


@dataclass
class _Package:
    carrier: str | None
    url: str | None
    line: int  # where it was first seen, for messages


@dataclass
class _Notice:
    shipment_id: str | None
    shipped_at: tuple[datetime, int, str] | None = None  # value, line, text as written
    packages: dict[str | None, _Package] = field(default_factory=dict)
    lines: list[ShippedLine] = field(default_factory=list)


def read_csv(data: bytes, columns: CsvColumns) -> list[ShipmentNotice]:
    """The notices in one CSV file; raises `NoticeInvalid`."""
    text = _decode(data)
    header_line = next((line for line in text.splitlines() if line.strip()), None)
    if header_line is None:
        raise NoticeInvalid("the file is empty", "csv")
    delimiter = max(_DELIMITERS, key=lambda d: len(next(csv.reader([header_line], delimiter=d))))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    index: dict[str, int] | None = None
    header: list[str] = []
    notices: dict[tuple[object, ...], _Notice] = {}
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not any(value.strip() for value in row):
                continue
            if index is None:
                header, index = row, _columns(row, columns, delimiter)
                continue
            _read_row(row, start, header, index, notices)
    except csv.Error as exc:
        raise NoticeInvalid(f"line {reader.line_num}: {exc}", "csv") from None
    return [_notice(key, notice) for key, notice in notices.items()]


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise NoticeInvalid(f"the file is not UTF-8: byte 0x{data[exc.start]:02x} on line {line} "
                            "cannot be read; save the file as UTF-8", "csv") from None
    if "\x00" in text:  # valid UTF-8, but no text file has it (and no database stores it)
        line = text[:text.index("\x00")].count("\n") + 1
        raise NoticeInvalid(f"line {line} contains a NUL character: is the file UTF-16 or not "
                            "text at all? Save it as UTF-8", "csv")
    return text


def _columns(header: list[str], columns: CsvColumns, delimiter: str) -> dict[str, int]:
    """Our field name -> the index of its column in `header`."""
    wanted = {getattr(columns, f.name).strip().casefold(): f.name for f in fields(columns)}
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        ours = wanted.get(name.strip().casefold())
        if ours is None:
            continue
        if ours in index:
            raise NoticeInvalid(f"column {name.strip()!r} appears twice in the header (columns "
                                f"{index[ours] + 1} and {position + 1})", "csv")
        index[ours] = position
    if any(name not in index for name in _REQUIRED) or not any(
            name in index for name in _IDENTIFYING):
        found = ", ".join(repr(name.strip()) for name in header)
        optional = ", ".join(getattr(columns, f.name) for f in fields(columns)
                             if f.name not in _REQUIRED + _IDENTIFYING)
        shown = {",": "','", ";": "';'", "\t": "tab"}[delimiter]
        raise NoticeInvalid(
            f"the header has the columns {found} (split at {shown}); expected "
            f"{columns.po_number}, {columns.quantity}, and {columns.sku} or {columns.line_number}"
            f" (optional: {optional})", "csv")
    return index


def _read_row(row: list[str], number: int, header: list[str], index: dict[str, int],
              notices: dict[tuple[object, ...], _Notice]) -> None:
    # More values than columns: something is shifted ("DHL, Express" unquoted), so no value
    # of the row can be trusted. Fewer is fine: some tools drop empty trailing values.
    if len(row) > len(header):
        raise NoticeInvalid(f"line {number} has {len(row)} values but the header has "
                            f"{len(header)} columns: is a value containing the delimiter not "
                            "in double quotes?", "csv")

    def value(name: str) -> tuple[str | None, str]:
        position = index.get(name)
        if position is None:
            return None, ""
        cell = row[position] if position < len(row) else ""
        return clean(cell), f"line {number}, column {header[position].strip()}"

    reference, where = value("po_number")
    if reference is None:
        raise NoticeInvalid(f"{where} is empty: which purchase order shipped?", "csv")
    po_number, file_name, version = resolve_order(reference, None, where, "csv")
    quantity = _quantity(*value("quantity"))
    sku, supplier_sku = value("sku")[0], value("supplier_sku")[0]
    line_no = line_number(*value("line_number"), "csv")
    if line_no is None and sku is None and supplier_sku is None:
        raise NoticeInvalid(f"line {number} gives neither a line number nor a SKU: which line "
                            "shipped?", "csv")
    shipment_id = value("shipment_id")[0]
    tracking = value("tracking_number")[0]
    carrier = value("carrier")[0]
    url = tracking_url(*value("tracking_url"), "csv")
    shipped_text, shipped_where = value("shipped_at")
    shipped_at = instant(shipped_text, shipped_where, "csv") if shipped_text else None

    group = ("shipment", shipment_id) if shipment_id else ("parcel", tracking)
    notice = notices.setdefault((po_number, file_name, version, *group), _Notice(shipment_id))
    if shipped_at is not None and shipped_text is not None:
        if notice.shipped_at is None:
            notice.shipped_at = (shipped_at, number, shipped_text)
        elif notice.shipped_at[0] != shipped_at:
            raise NoticeInvalid(f"{shipped_where} {shipped_text!r} contradicts line "
                                f"{notice.shipped_at[1]} ({notice.shipped_at[2]!r}) of the same "
                                "shipment", "csv")
    package = notice.packages.setdefault(tracking, _Package(None, None, number))
    for attribute, new, name in (("carrier", carrier, "carrier"), ("url", url, "tracking_url")):
        old = getattr(package, attribute)
        if new is not None and old is not None and new != old:
            where = value(name)[1]
            raise NoticeInvalid(f"{where} {new!r} contradicts line {package.line} ({old!r}) "
                                f"for the same parcel", "csv")
        setattr(package, attribute, old or new)
    notice.lines.append(ShippedLine(line_no, sku or supplier_sku, supplier_sku, quantity))


def _quantity(text: str | None, where: str) -> int:
    if text is None:
        raise NoticeInvalid(f"{where} is empty: how many units shipped?", "csv")
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise NoticeInvalid(f"{where} {text!r} is not a whole number of units above 0 "
                            "(digits only)", "csv")
    return int(text)


def _notice(key: tuple[object, ...], notice: _Notice) -> ShipmentNotice:
    po_number, file_name, version = key[:3]
    assert po_number is None or isinstance(po_number, str)
    assert file_name is None or isinstance(file_name, str)
    assert version is None or isinstance(version, int)
    tracked = any(tracking is not None for tracking in notice.packages)
    packages = tuple(
        Package(package.carrier, tracking, package.url)
        for tracking, package in notice.packages.items()
        # A row without a tracking number next to rows with one adds no parcel of its own.
        if tracking is not None or (not tracked and (package.carrier or package.url))
    )
    return ShipmentNotice(
        po_number=po_number,
        po_file_name=file_name,
        version=version,
        shipment_id=notice.shipment_id,
        shipped_at=notice.shipped_at[0] if notice.shipped_at else None,
        packages=packages,
        lines=tuple(notice.lines),
        format="csv",
    )
