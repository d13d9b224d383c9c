"""Stock feeds as CSV, read as a stream: one row per SKU (and warehouse), described for
suppliers in app/documents/FORMATS.md ("Stock feeds as CSV").

- Encoding: UTF-8, with or without a byte-order mark. The bytes are read line by line and each
  line decoded on its own, so a feed of any length needs memory for one line at a time, and a
  byte that is not UTF-8 is reported with its line.
- Delimiter: `,`, `;`, tab or `|`, whichever splits the header line into the most known column
  names (then the most columns).
- Header: required, the first line that is not blank; names matched ignoring case and
  surrounding white space, as configured per supplier (`FeedColumns`). Required: sku and
  quantity; optional: warehouse, eta, as_of. Other columns are ignored.
- Values: quantity is a whole number, 0 or more, written with digits only ("1.000" could mean
  one or a thousand, "-2" is not stock); eta an ISO 8601 date; as_of an ISO 8601 date or date
  and time (without a zone: UTC). Blank rows are skipped.

A row that breaks a rule is a bad row: counted in `FeedProblems` with its line and never
yielded. What makes the whole file unreadable (no header, missing columns, not UTF-8, broken
quoting, a line over `MAX_LINE_BYTES`) raises `FeedInvalid`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import fields
from datetime import date
from typing import IO, TYPE_CHECKING, Final

from stock.feed_model import FeedColumns, FeedInvalid, FeedProblems, FeedRow
from stock.feed_values import csv_quantity, instant, iso_date

if TYPE_CHECKING:
    from _csv import Reader

DELIMITERS: Final = (",", ";", "\t", "|")
MAX_LINE_BYTES: Final = 1024 * 1024  # longer is not a stock line; it would only fill memory

_REQUIRED: Final = ("sku", "quantity")
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
_SHOWN: Final = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}


def _lines(stream: IO[bytes]) -> Iterator[str]:
    """The decoded lines of a binary stream, one at a time, for `csv.reader` to pull from."""
    readline = stream.readline
    number = 0
    while raw := readline(MAX_LINE_BYTES):
        number += 1
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise FeedInvalid(f"line {number} is longer than {MAX_LINE_BYTES} bytes: is this a "
                              "CSV file with one line per SKU?")
        if number == 1:
            if raw.startswith(_UTF16_BOMS):
                raise FeedInvalid("the file is UTF-16; save it as UTF-8")
            if raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedInvalid(f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} on line "
                              f"{number} cannot be read; save the file as UTF-8") from None
        if "\x00" in text:  # valid UTF-8, but no text file has it
            raise FeedInvalid(f"line {number} contains a NUL character: is the file UTF-16 or "
                              "not text at all? Save it as UTF-8")
        yield text


def read_csv(stream: IO[bytes], *, columns: FeedColumns,
             problems: FeedProblems) -> Iterator[FeedRow]:
    """The rows of one CSV feed, as they are read; bad rows go to `problems`."""
    problems.format = "csv"
    lines = _lines(stream)
    header_line = 0
    for header_text in lines:
        header_line += 1
        if header_text.strip():
            break
    else:
        raise FeedInvalid("the file is empty: a header line (sku, quantity, ...) is required")
    if "\r" in header_text.rstrip("\r\n"):
        raise FeedInvalid("the lines end with a carriage return only (classic Mac); save the "
                          "file with LF or CRLF line ends")
    delimiter, header = _sniff(header_text, columns)
    index = _columns(header, columns, delimiter, header_line)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        yield from _rows(reader, header_line, header, index, problems)
    except csv.Error as exc:
        raise FeedInvalid(f"line {header_line + reader.line_num}: {exc}") from None


def _sniff(header_text: str, columns: FeedColumns) -> tuple[str, list[str]]:
    """The delimiter that finds the most of our column names in the header, then the one
    that splits it into the most columns; with the header split by it."""
    wanted = {getattr(columns, f.name).strip().casefold() for f in fields(columns)}
    best: tuple[int, int] | None = None
    chosen = (DELIMITERS[0], [header_text])
    for delimiter in DELIMITERS:
        try:
            names = next(csv.reader([header_text], delimiter=delimiter, strict=True))
        except csv.Error:
            continue
        score = (sum(name.strip().casefold() in wanted for name in names), len(names))
        if best is None or score > best:
            best, chosen = score, (delimiter, names)
    return chosen


def _columns(header: list[str], columns: FeedColumns, delimiter: str,
             line: int) -> dict[str, int]:
    """Our field name -> the index of its column in `header`."""
    wanted = {getattr(columns, f.name).strip().casefold(): f.name for f in fields(columns)}
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        ours = wanted.get(name.strip().casefold())
        if ours is None:
            continue
        if ours in index:
            raise FeedInvalid(f"line {line}: column {name.strip()!r} appears twice in the "
                              f"header (columns {index[ours] + 1} and {position + 1})")
        index[ours] = position
    if any(name not in index for name in _REQUIRED):
        found = ", ".join(repr(name.strip()) for name in header)
        optional = ", ".join(getattr(columns, f.name) for f in fields(columns)
                             if f.name not in _REQUIRED)
        raise FeedInvalid(
            f"line {line}: the header has the columns {found} (split at {_SHOWN[delimiter]}); "
            f"expected {columns.sku} and {columns.quantity} (optional: {optional})")
    return index


def _rows(reader: Reader, offset: int, header: list[str],
          index: dict[str, int], problems: FeedProblems) -> Iterator[FeedRow]:
    """The good rows of `reader` (whose line 1 is the file's line `offset` + 1)."""
    width = len(header)
    sku_at, quantity_at = index["sku"], index["quantity"]
    warehouse_at, eta_at, as_of_at = index.get("warehouse"), index.get("eta"), index.get("as_of")
    names = {ours: header[position].strip() for ours, position in index.items()}
    last_as_of = ""  # feeds repeat one as_of on every row: read it once
    end = offset
    for row in reader:
        start, end = end + 1, offset + reader.line_num  # a quoted value may span lines
        length = len(row)
        sku = row[sku_at].strip() if sku_at < length else ""
        if length > width:
            # More values than columns: something is shifted ("Hochbeet, Zeder" unquoted), so
            # no value of the row can be trusted. Fewer is fine: tools drop empty trailing ones.
            problems.bad_row(f"line {start} has {length} values but the header has {width} "
                             "columns: is a value containing the delimiter not in double "
                             "quotes?", sku)
            continue
        if not sku:
            if any(value.strip() for value in row):
                problems.bad_row(f"line {start}: {names['sku']} is empty")
            continue
        text = row[quantity_at] if quantity_at < length else ""
        if text.isdigit() and text.isascii() and len(text) < 10:  # the usual case, quickly
            quantity: int | str = int(text)
        else:
            quantity = csv_quantity(text)
        if isinstance(quantity, str):
            shown = f" {text.strip()!r}" if text.strip() else ""
            problems.bad_row(f"line {start}: {names['quantity']}{shown} {quantity}", sku)
            continue
        warehouse = None
        if warehouse_at is not None and warehouse_at < length:
            warehouse = row[warehouse_at].strip() or None
        eta: date | None = None
        if eta_at is not None and eta_at < length and row[eta_at].strip():
            day = iso_date(row[eta_at])
            if isinstance(day, str):
                problems.bad_row(f"line {start}: {names['eta']} {row[eta_at].strip()!r} {day}",
                                 sku)
                continue
            eta = day
        if as_of_at is not None and as_of_at < length:
            text = row[as_of_at].strip()
            if text and text != last_as_of:
                moment = instant(text)
                if isinstance(moment, str):
                    problems.bad_row(f"line {start}: {names['as_of']} {text!r} {moment}", sku)
                    continue
                problems.saw_as_of(moment)
                last_as_of = text
        problems.rows += 1
        yield FeedRow(sku, quantity, warehouse, eta, start)
