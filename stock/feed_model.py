"""A supplier's stock feed as OrderHub reads it: plain data, whatever the format.

The parsers (`stock.feed_csv`, `stock.feed_xml`) yield one `FeedRow` per stock line as they
read, and note in a `FeedProblems` what they could not use. `stock.feeds.read_feed` picks the
parser. Nothing here touches a database or the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, Literal, Protocol

from app.errors import OrderHubError

FeedFormat = Literal["csv", "ubl", "orderhub"]

# Enough to show a supplier what kind of mistake it makes, few enough for an alert e-mail.
MAX_MESSAGES: Final = 20
# A quantity beyond this is not a count of goods on a shelf (a barcode in the wrong column),
# and would not fit the database's integer column.
MAX_QUANTITY: Final = 2**31 - 1


class Readable(Protocol):
    """What a feed is read from: any binary stream (a file, a transport's download, a
    wrapper hashing what passes through). Only `read` is used, and the stream is not closed."""

    def read(self, size: int = -1, /) -> bytes: ...


class FeedInvalid(OrderHubError):
    """The whole feed cannot be used (no header, wrong columns, not UTF-8, not well-formed or
    structurally invalid XML, a DOCTYPE); `reason` says why and, where it can, on which line.

    It may be raised after some rows were already yielded: a caller must then discard every
    row of the feed, never apply part of it."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        super().__init__(f"stock feed {name!r} invalid: {reason}" if name
                         else f"stock feed invalid: {reason}")
        self.reason = reason
        self.name = name


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One line of a feed: so many units of one SKU (in one warehouse, when the feed says).

    A SKU may have several rows (one per warehouse, or simply repeated): each is yielded as it
    comes and the caller adds them up."""

    sku: str                       # the SKU as the feed names it: the supplier's own
    quantity: int                  # units available, 0 or more
    warehouse: str | None = None
    eta: date | None = None        # when more is expected, if the feed says
    line: int = 0                  # where the row starts in the file, for messages
    our_sku: str | None = None     # OrderHub's SKU, when the feed quotes it too (UBL)


@dataclass(frozen=True)
class FeedColumns:
    """The header names of one supplier's CSV feed, matched ignoring case and surrounding
    white space. `sku` and `quantity` are required; the others are read when present."""

    sku: str = "sku"
    quantity: str = "quantity"
    warehouse: str = "warehouse"
    eta: str = "eta"
    as_of: str = "as_of"


@dataclass
class FeedProblems:
    """What reading one feed found besides its rows, filled in while the rows are read: final
    only once the iterator is exhausted.

    - `bad_rows`: rows that were not used, each a mistake in the file (never guessed at);
    - `first`: the messages of the first `MAX_MESSAGES` of them, "line 17: quantity 'abc' is
      not a whole number";
    - `bad_skus`: the SKUs named on bad rows, when the SKU itself could be read, so that a
      caller can hold those at their last good quantity instead of reading them as absent;
    - `rows`: rows yielded;
    - `as_of`: when the supplier says the feed was taken (aware UTC), the newest value of the
      CSV `as_of` column, the UBL IssueDate/IssueTime or the native `asOf`; None if not given;
    - `format`: which format the content turned out to be.
    """

    bad_rows: int = 0
    first: list[str] = field(default_factory=list)
    bad_skus: set[str] = field(default_factory=set)
    rows: int = 0
    as_of: datetime | None = None
    format: FeedFormat | None = None

    def bad_row(self, message: str, sku: str | None = None) -> None:
        """Count one bad row; keep its message if it is among the first few."""
        self.bad_rows += 1
        if len(self.first) < MAX_MESSAGES:
            self.first.append(message)
        if sku:
            self.bad_skus.add(sku)

    def saw_as_of(self, moment: datetime) -> None:
        """Keep the newest `as_of` seen."""
        if self.as_of is None or moment > self.as_of:
            self.as_of = moment
