"""Suppliers' stock feeds: pure streaming parsers, no database, no network, no I/O but reading
the stream they are given (and the bundled schemas). `read_feed(stream, name=..., problems=...)`
yields a `FeedRow` per stock line while it reads, so a feed of a million lines needs memory for
one line at a time; the caller adds up the rows of each SKU.

The format is told from the content, never from the name alone:

- the first byte that is not white space (after a byte-order mark) is `<`: XML, and the root
  element decides: UBL 2.1 `InventoryReport` or OrderHub's `StockFeed`
  (`urn:orderhub:stock-feed:1`), see `stock.feed_xml`;
- anything else is CSV (`stock.feed_csv`) with the supplier's `FeedColumns`.

The name is a hint that must agree: a file named `*.xml` that is not XML, or `*.csv` that is,
is refused rather than read as something its sender did not mean.

Errors: a mistake in one row is a bad row, counted in `FeedProblems` with its line, and the row
is not yielded (never guessed at). A feed that cannot be read at all raises `FeedInvalid`,
possibly after rows were yielded: the caller must then discard the whole feed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from stock.feed_csv import read_csv
from stock.feed_model import (
    MAX_MESSAGES,
    FeedColumns,
    FeedFormat,
    FeedInvalid,
    FeedProblems,
    FeedRow,
    Readable,
)
from stock.feed_xml import read_xml, schema_problem

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DEFAULT_COLUMNS",
    "MAX_MESSAGES",
    "FeedColumns",
    "FeedFormat",
    "FeedInvalid",
    "FeedProblems",
    "FeedRow",
    "Readable",
    "read_feed",
    "schema_problem",
]

DEFAULT_COLUMNS: Final = FeedColumns()  # frozen: safe to share as the default

_BUFFER_BYTES: Final = 64 * 1024
_SNIFF_BYTES: Final = 64 * 1024  # white space before the first character; more is not a feed
_WHITESPACE: Final = b" \t\r\n"
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")


def read_feed(stream: Readable, *, name: str, columns: FeedColumns = DEFAULT_COLUMNS,
              problems: FeedProblems) -> Iterator[FeedRow]:
    """The rows of the stock feed in `stream` (a file named `name`), read as a stream: CSV
    with `columns`, UBL 2.1 InventoryReport or OrderHub's StockFeed. Bad rows are counted in
    `problems`, which also receives the feed's `as_of` and format; raises `FeedInvalid`.

    A generator: nothing is read until the first row is asked for. `stream` is not closed."""
    try:
        prefix = _start(stream)
        is_xml = _looks_like_xml(prefix)
        _check_name(name, is_xml)
        buffered = io.BufferedReader(_Prefixed(prefix, stream), _BUFFER_BYTES)
        if is_xml:
            yield from read_xml(buffered, problems=problems)
        else:
            yield from read_csv(buffered, columns=columns, problems=problems)
    except FeedInvalid as exc:
        if exc.name is not None:
            raise
        raise FeedInvalid(exc.reason, name) from None


def _start(stream: Readable) -> bytes:
    """The first few KB of `stream`, enough to hold its first byte that is not white space
    (nor a byte-order mark); raises `FeedInvalid` when there is none."""
    prefix = b""
    while True:
        chunk = stream.read(4096)
        if not chunk:
            break
        prefix += chunk
        if prefix.lstrip(_UTF8_BOM + _WHITESPACE + b"\x00\xff\xfe"):
            return prefix
        if len(prefix) > _SNIFF_BYTES:
            raise FeedInvalid(f"the file starts with more than {_SNIFF_BYTES} bytes of white "
                              "space")
    raise FeedInvalid("the file is empty")


def _looks_like_xml(start: bytes) -> bool:
    if start.startswith(_UTF8_BOM):
        start = start[len(_UTF8_BOM):]
    elif start.startswith(_UTF16_BOMS):  # UTF-16: every other byte is 0 in the ASCII range
        start = start[2:].replace(b"\x00", b"")
    return start.lstrip(_WHITESPACE).startswith(b"<")


def _check_name(name: str, is_xml: bool) -> None:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == "xml" and not is_xml:
        raise FeedInvalid("the file is named .xml but does not start with '<': it is not XML")
    if suffix in ("csv", "tsv", "txt") and is_xml:
        raise FeedInvalid(f"the file is named .{suffix} but starts with '<': it holds XML "
                          "(or an HTML page), not CSV")


class _Prefixed(io.RawIOBase):
    """`rest` with the bytes already read from it put back in front; never closes `rest`."""

    def __init__(self, prefix: bytes, rest: Readable) -> None:
        super().__init__()
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(view))
        view[:len(data)] = data
        return len(data)
