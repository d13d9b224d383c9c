"""Suppliers' stock feeds: what OrderHub reads from CSV files, a UBL 2.1 InventoryReport and its
own StockFeed, that bad rows are counted with their line and never guessed at, that broken or
hostile files are refused with a reason, and that a million-line feed streams in bounded memory.

Fixtures in `tests/fixtures/stock/` all describe the same stock: AE-4711 in two warehouses
(12 in HAL, 3 in LEJ), AE-0815 sold out until 2026-12-04, AE-2020 40 without a warehouse,
counted at 2026-11-23 06:00 UTC. The UBL one is shaped like the OASIS example instance
`UBL-InventoryReport-2.1-Example.xml` (parties, InventoryPeriod, lines with value amounts and
buyer's and seller's item identification), with locations, an availability date and an issue
time added; the CSV and native ones are FORMATS.md's examples.
"""

from __future__ import annotations

import io
import re
import time
import tracemalloc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.errors import OrderHubError
from stock.feeds import (
    MAX_MESSAGES,
    FeedColumns,
    FeedInvalid,
    FeedProblems,
    FeedRow,
    read_feed,
    schema_problem,
)
from tests.unit.helpers import utc

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stock"
FORMATS_MD = Path(__file__).parents[2] / "app" / "documents" / "FORMATS.md"
COUNTED = utc(2026, 11, 23, 6)
STOCK = [("AE-4711", 12, "HAL"), ("AE-4711", 3, "LEJ"), ("AE-0815", 0, None),
         ("AE-2020", 40, None)]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def read(data: bytes, name: str = "stock.csv",
         columns: FeedColumns | None = None) -> tuple[list[FeedRow], FeedProblems]:
    problems = FeedProblems()
    extra = {"columns": columns} if columns is not None else {}
    rows = list(read_feed(io.BytesIO(data), name=name, problems=problems, **extra))
    return rows, problems


def refused(data: bytes, name: str = "stock.csv", columns: FeedColumns | None = None) -> str:
    with pytest.raises(FeedInvalid) as caught:
        read(data, name, columns)
    assert caught.value.name == name
    assert str(caught.value).startswith(f"stock feed {name!r} invalid: ")
    return caught.value.reason


def stock(rows: list[FeedRow]) -> list[tuple[str, int, str | None]]:
    return [(row.sku, row.quantity, row.warehouse) for row in rows]


# ---------------------------------------------------------------- CSV


def test_csv_with_commas_warehouses_eta_and_as_of() -> None:
    rows, problems = read(fixture("csv_comma.csv"))

    assert rows == [
        FeedRow("AE-4711", 12, "HAL", None, line=2),
        FeedRow("AE-4711", 3, "LEJ", None, line=3),
        FeedRow("AE-0815", 0, "HAL", date(2026, 12, 4), line=4),
        FeedRow("AE-2020", 40, None, None, line=5),
    ]
    assert problems == FeedProblems(rows=4, as_of=COUNTED, format="csv")


def test_csv_with_semicolons_bom_crlf_and_the_suppliers_own_column_names() -> None:
    data = fixture("csv_semicolon_bom.csv")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    columns = FeedColumns(sku="Artikelnummer", quantity="Bestand", warehouse="Lager")

    rows, problems = read(data, columns=columns)

    assert stock(rows) == [("AE-4711", 12, "HAL"), ("AE-4711", 3, "LEJ"),
                           ("AE-0815", 0, "HAL"), ("AE-2020", 40, None)]
    assert [row.line for row in rows] == [2, 3, 4, 5]
    assert problems.bad_rows == 0 and problems.as_of is None


def test_csv_with_tabs() -> None:
    rows, problems = read(fixture("csv_tab.tsv"), name="stock.tsv")

    assert stock(rows) == [("AE-4711", 15, None), ("AE-0815", 0, None), ("AE-2020", 40, None)]
    assert problems.bad_rows == 0


def test_metapack_layout_with_pipes() -> None:
    # Metapack's stock feed: SKU, WarehouseDCCode, AvailableQuantity, any of , | ; or tab.
    columns = FeedColumns(sku="SKU", quantity="AvailableQuantity", warehouse="WarehouseDCCode")

    rows, problems = read(fixture("metapack_pipe.csv"), name="Stock_GB_20261123T060000Z.csv",
                          columns=columns)

    assert stock(rows) == [("AE-4711", 12, "HAL"), ("AE-4711", 3, "LEJ"),
                           ("AE-0815", 0, "HAL"), ("AE-2020", 40, "HAL")]
    assert problems.bad_rows == 0


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_header_decides_the_delimiter(delimiter: str) -> None:
    # The values hold the other delimiters: only the header line may decide.
    header = delimiter.join(["Quantity ", " SKU", "note"])
    body = delimiter.join(["7", "AE-1", '"a, b; c| d"'])

    rows, problems = read(f"{header}\n{body}\n".encode())

    assert rows == [FeedRow("AE-1", 7, line=2)]
    assert problems.bad_rows == 0


def test_bad_rows_are_counted_with_their_line_and_never_guessed() -> None:
    rows, problems = read(fixture("csv_bad_rows.csv"))

    assert rows == [FeedRow("AE-4711", 12, "HAL", line=2),
                    FeedRow("AE-8080", 9, "LEJ", date(2026, 12, 1), line=12)]
    assert problems.bad_rows == 9
    assert problems.first == [
        "line 3: quantity 'abc' is not a whole number (digits only)",
        "line 4: sku is empty",
        "line 5: quantity '-3' is negative",
        "line 6: quantity '2.5' is not a whole number (digits only)",
        "line 8: quantity '1.000' is not a whole number (digits only)",
        "line 9: eta '23.11.2026' is not an ISO 8601 date (2026-12-01)",
        "line 10 has 5 values but the header has 4 columns: is a value containing the "
        "delimiter not in double quotes?",
        "line 11: quantity is empty",
        "line 13: quantity '12 Stk' is not a whole number (digits only)",
    ]
    # So that a caller can hold these at their last good quantity rather than read them as 0.
    assert problems.bad_skus == {"AE-0815", "AE-2020", "AE-3030", "AE-4040", "AE-5050",
                                 "AE-6060", "AE-7070", "AE-9090"}
    assert problems.rows == 2


def test_only_the_first_messages_are_kept_but_every_bad_row_is_counted() -> None:
    body = "".join(f"AE-{n},x\n" for n in range(50))

    rows, problems = read(f"sku,quantity\n{body}AE-OK,1\n".encode())

    assert rows == [FeedRow("AE-OK", 1, line=52)]
    assert problems.bad_rows == 50
    assert len(problems.first) == MAX_MESSAGES
    assert problems.first[-1] == f"line {MAX_MESSAGES + 1}: quantity 'x' is not a whole number " \
                                 "(digits only)"


def test_a_quantity_beyond_any_shelf_is_a_bad_row() -> None:
    rows, problems = read(b"sku,quantity\nAE-1,4006381333931\nAE-2,2147483647\n")

    assert rows == [FeedRow("AE-2", 2147483647, line=3)]
    assert problems.first == ["line 2: quantity '4006381333931' is more than 2147483647: is it "
                              "in the right column?"]


def test_line_numbers_count_blank_lines_and_quoted_line_breaks() -> None:
    data = b'\n\nsku,quantity,warehouse\nAE-1,1,"Halle\nNord"\n\n   \nAE-2,2,LEJ\nAE-3,x,\n'

    rows, problems = read(data)

    assert rows == [FeedRow("AE-1", 1, "Halle\nNord", line=4), FeedRow("AE-2", 2, "LEJ", line=8)]
    assert problems.first == ["line 9: quantity 'x' is not a whole number (digits only)"]


def test_fewer_values_than_columns_are_empty_values() -> None:
    rows, problems = read(b"sku,quantity,warehouse,eta\nAE-1,4\nAE-2\n")

    assert rows == [FeedRow("AE-1", 4, line=2)]
    assert problems.first == ["line 3: quantity is empty"]


def test_as_of_is_the_newest_given_in_utc() -> None:
    data = (b"sku,quantity,as_of\nAE-1,1,2026-11-23T07:00:00+01:00\nAE-2,2,2026-11-23 08:30\n"
            b"AE-3,3,2026-11-22\nAE-4,4,\nAE-5,5,yesterday\n")

    rows, problems = read(data)

    assert [row.sku for row in rows] == ["AE-1", "AE-2", "AE-3", "AE-4"]
    assert problems.as_of == utc(2026, 11, 23, 8, 30)
    assert problems.first == ["line 6: as_of 'yesterday' is not an ISO 8601 date or date and "
                              "time (2026-11-23T06:00:00Z)"]


def test_a_header_only_feed_has_no_rows() -> None:
    assert read(b"sku,quantity\n") == ([], FeedProblems(format="csv"))


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "the file is empty"),
    (b"  \n\r\n\t\n", "the file is empty"),
    (b"\xef\xbb\xbf", "the file is empty"),
    (b"sku;menge\nAE-1;4\n",
     "line 1: the header has the columns 'sku', 'menge' (split at ';'); expected sku and "
     "quantity (optional: warehouse, eta, as_of)"),
    (b"AE-1,4\nAE-2,5\n",
     "line 1: the header has the columns 'AE-1', '4' (split at ','); expected sku and "
     "quantity (optional: warehouse, eta, as_of)"),
    (b"\nsku,quantity,SKU\n", "line 2: column 'SKU' appears twice in the header (columns 1 and 3)"),
    (b"sku,quantity\rAE-1,4\rAE-2,5\r",
     "the lines end with a carriage return only (classic Mac); save the file with LF or CRLF "
     "line ends"),
    ("sku,quantity\n".encode("utf-16"), "the file is UTF-16; save it as UTF-8"),
    (b"sku,quantity\nAE-1,4\n\"AE-2,5\n", "line 3: unexpected end of data"),
    (b"sku,quantity\nAE-1,4\nAE-\x002,5\n",
     "line 3 contains a NUL character: is the file UTF-16 or not text at all? Save it as UTF-8"),
])
def test_an_unreadable_csv_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    assert refused(data) == reason


def test_a_byte_that_is_not_utf8_voids_the_feed_even_after_rows_were_read() -> None:
    data = "sku,quantity,warehouse\nAE-1,4,HAL\nAE-2,5,Köln\n".encode("latin-1")
    problems = FeedProblems()
    rows: list[FeedRow] = []

    with pytest.raises(FeedInvalid) as caught:
        rows.extend(read_feed(io.BytesIO(data), name="stock.csv", problems=problems))

    assert caught.value.reason == ("the file is not UTF-8: byte 0xf6 on line 3 cannot be "
                                   "read; save the file as UTF-8")
    # Rows came before the error: the caller must discard them all (FeedInvalid says so).
    assert rows == [FeedRow("AE-1", 4, "HAL", line=2)]


def test_a_line_without_end_is_refused_not_read_into_memory() -> None:
    data = b"sku,quantity\n" + b"AE-1," + b"9" * (1024 * 1024 + 10)

    assert refused(data) == ("line 2 is longer than 1048576 bytes: is this a CSV file with one "
                             "line per SKU?")


def test_the_name_is_a_hint_that_must_agree_with_the_content() -> None:
    assert refused(b"sku,quantity\nAE-1,4\n", name="stock.xml") == (
        "the file is named .xml but does not start with '<': it is not XML")
    assert refused(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>") == (
        "the file is named .csv but starts with '<': it holds XML (or an HTML page), not CSV")
    # Any other name: the content decides.
    rows, problems = read(fixture("csv_comma.csv"), name="stock_20261123")
    assert len(rows) == 4 and problems.format == "csv"
    rows, problems = read(fixture("orderhub_stock_feed.xml"), name="stock_20261123")
    assert len(rows) == 4 and problems.format == "orderhub"


def test_the_stream_is_read_lazily_and_left_open() -> None:
    stream = io.BytesIO(fixture("csv_comma.csv"))
    rows = read_feed(stream, name="stock.csv", problems=FeedProblems())
    assert stream.tell() == 0

    assert len(list(rows)) == 4
    assert not stream.closed


def test_feed_invalid_is_an_orderhub_error() -> None:
    assert issubclass(FeedInvalid, OrderHubError)


# ---------------------------------------------------------------- UBL InventoryReport


def test_ubl_inventory_report() -> None:
    data = fixture("ubl_inventory_report.xml")
    assert schema_problem(data) is None  # valid against the official OASIS schema

    rows, problems = read(data, name="inventory.xml")

    assert rows == [
        FeedRow("AE-4711", 12, "HAL", None, line=62, our_sku="AG-BED-CED-L"),
        FeedRow("AE-4711", 3, "LEJ", None, line=79, our_sku="AG-BED-CED-L"),
        FeedRow("AE-0815", 0, "HAL", date(2026, 12, 4), line=96, our_sku="AG-TRWL"),
        FeedRow("AE-2020", 40, None, None, line=113),  # "40.000": a whole number in XML
    ]
    # IssueDate 2026-11-23 with IssueTime 07:00:00+01:00.
    assert problems == FeedProblems(rows=4, as_of=COUNTED, format="ubl")


def _ubl(old: str, new: str) -> bytes:
    """The UBL fixture with `old` (a regular expression when it has ".*") replaced once."""
    xml = fixture("ubl_inventory_report.xml").decode()
    if ".*" not in old:
        old = re.escape(old)
    assert re.search(old, xml, flags=re.S), old
    return re.sub(old, new, xml, count=1, flags=re.S).encode()


# Whether the official schema accepts the line too: UBL allows any decimal and any unit.
@pytest.mark.parametrize(("old", "new", "message", "schema_valid"), [
    ('<cbc:Quantity unitCode="C62">12</cbc:Quantity>',
     '<cbc:Quantity unitCode="C62">12.5</cbc:Quantity>',
     "line 62: cac:InventoryReportLine 1: cbc:Quantity '12.5' is not a whole number", True),
    ('<cbc:Quantity unitCode="C62">12</cbc:Quantity>',
     '<cbc:Quantity unitCode="C62">-12</cbc:Quantity>',
     "line 62: cac:InventoryReportLine 1: cbc:Quantity '-12' is negative", True),
    ('<cbc:Quantity unitCode="C62">12</cbc:Quantity>',
     '<cbc:Quantity unitCode="C62">1,5</cbc:Quantity>',
     "line 62: cac:InventoryReportLine 1: cbc:Quantity '1,5' is not a number", False),
    ('<cbc:Quantity unitCode="C62">12</cbc:Quantity>',
     '<cbc:Quantity unitCode="KGM">12</cbc:Quantity>',
     "line 62: cac:InventoryReportLine 1: cbc:Quantity unitCode 'KGM' is not a count of pieces "
     "(C62, EA, H87, NAR)", True),
    ('<cbc:ID>1</cbc:ID>\n        <cbc:Quantity unitCode="C62">12</cbc:Quantity>',
     '<cbc:Quantity unitCode="C62">12</cbc:Quantity>\n        <cbc:ID>1</cbc:ID>',
     "line 62: cac:InventoryReportLine 1: cbc:Quantity found where cac:InventoryReportLine "
     "needs cbc:ID", False),
    ('<cbc:Quantity unitCode="C62">12</cbc:Quantity>', "",
     "line 62: cac:InventoryReportLine 1: cbc:InventoryValueAmount found where "
     "cac:InventoryReportLine needs cbc:Quantity", False),
    ("<cac:SellersItemIdentification>\n                <cbc:ID>AE-4711</cbc:ID>\n"
     "            </cac:SellersItemIdentification>", "",
     "line 62: cac:InventoryReportLine 1: cac:Item has no cac:SellersItemIdentification/cbc:ID "
     "(your SKU)", True),
    ("<cbc:AvailabilityDate>2026-12-04</cbc:AvailabilityDate>",
     "<cbc:AvailabilityDate>04.12.2026</cbc:AvailabilityDate>",
     "line 96: cac:InventoryReportLine 3: cbc:AvailabilityDate '04.12.2026' is not an xs:date "
     "(2026-12-01)", False),
])
def test_a_bad_ubl_line_is_a_bad_row_and_the_others_are_read(old: str, new: str, message: str,
                                                              schema_valid: bool) -> None:
    data = _ubl(old, new)
    assert (schema_problem(data) is None) == schema_valid

    rows, problems = read(data, name="inventory.xml")

    assert problems.first == [message]
    assert problems.bad_rows == 1 and len(rows) == 3


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("<cac:InventoryReportingParty>.*</cac:InventoryReportingParty>", "",
     "line 36: cac:SellerSupplierParty found where InventoryReport needs "
     "cac:InventoryReportingParty"),
    ("<cbc:IssueDate>2026-11-23</cbc:IssueDate>", "",
     "line 10: cbc:IssueTime found where InventoryReport needs cbc:IssueDate"),
    ("<cbc:IssueDate>2026-11-23</cbc:IssueDate>", "<cbc:IssueDate>23.11.2026</cbc:IssueDate>",
     "line 9: cbc:IssueDate/cbc:IssueTime '23.11.2026 07:00:00+01:00' is not an xs:date and "
     "xs:time (2026-11-23 and 06:00:00Z)"),
    ("<cac:InventoryReportLine>.*</cac:InventoryReportLine>\n</InventoryReport>",
     "</InventoryReport>", "InventoryReport has no cac:InventoryReportLine"),
    ("<cbc:UBLVersionID>2.1</cbc:UBLVersionID>", "<cbc:Colour>green</cbc:Colour>",
     "line 6: cbc:Colour found where InventoryReport needs cbc:ID"),
    ("</InventoryReport>", "<cbc:Note>late</cbc:Note></InventoryReport>",
     "line 123: cbc:Note is not expected at this place in InventoryReport"),
])
def test_a_structurally_invalid_report_is_refused(old: str, new: str, reason: str) -> None:
    data = _ubl(old, new)
    assert schema_problem(data) is not None

    assert refused(data, name="inventory.xml") == reason


def test_a_report_time_without_a_zone_is_utc_and_a_date_alone_midnight() -> None:
    _, problems = read(_ubl("07:00:00+01:00", "07:00:00"), name="inventory.xml")
    assert problems.as_of == utc(2026, 11, 23, 7)

    _, problems = read(_ubl("<cbc:IssueTime>07:00:00+01:00</cbc:IssueTime>", ""),
                       name="inventory.xml")
    assert problems.as_of == utc(2026, 11, 23)


def test_a_truncated_report_is_refused() -> None:
    data = fixture("ubl_inventory_report.xml")[:5000]

    reason = refused(data, name="inventory.xml")

    assert reason.startswith("not well-formed XML: ")


# ---------------------------------------------------------------- OrderHub StockFeed


def test_native_stock_feed() -> None:
    data = fixture("orderhub_stock_feed.xml")
    assert schema_problem(data) is None

    rows, problems = read(data, name="stock.xml")

    assert rows == [
        FeedRow("AE-4711", 12, "HAL", None, line=3),
        FeedRow("AE-4711", 3, "LEJ", None, line=4),
        FeedRow("AE-0815", 0, None, date(2026, 12, 4), line=5),
        FeedRow("AE-2020", 40, None, None, line=6),
    ]
    assert problems == FeedProblems(rows=4, as_of=COUNTED, format="orderhub")


def _native(items: str, as_of: str = 'asOf="2026-11-23T06:00:00Z"') -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<StockFeed xmlns="urn:orderhub:stock-feed:1" {as_of}>\n{items}</StockFeed>\n'
            ).encode()


@pytest.mark.parametrize(("item", "message"), [
    ('<Item sku="AE-1" quantity="-1"/>', "line 4: Item quantity '-1' is negative"),
    ('<Item sku="AE-1" quantity="1.5"/>',
     "line 4: Item quantity '1.5' is not a whole number (digits only)"),
    ('<Item sku="AE-1"/>', "line 4: Item quantity is empty"),
    ('<Item sku=" " quantity="1"/>', "line 4: Item has no sku"),
    ('<Item sku="AE-1" quantity="1" eta="soon"/>',
     "line 4: Item eta 'soon' is not an xs:date (2026-12-01)"),
    ('<Item sku="AE-1" quantity="1" qty="2"/>',
     "line 4: Item has the unknown attribute(s) qty"),
    ('<Item sku="AE-1" quantity="1">5</Item>',
     "line 4: Item must be empty: everything is in its attributes"),
])
def test_a_bad_native_item_is_a_bad_row_and_invalid_for_the_schema(item: str,
                                                                   message: str) -> None:
    data = _native(f'  <Item sku="AE-0" quantity="0"/>\n  {item}\n  <Item sku="AE-2" '
                   'quantity="+2" eta="2026-12-04Z"/>\n')
    assert schema_problem(data) is not None

    rows, problems = read(data, name="stock.xml")

    assert problems.first == [message]
    assert rows == [FeedRow("AE-0", 0, line=3), FeedRow("AE-2", 2, None, date(2026, 12, 4),
                                                         line=5)]


@pytest.mark.parametrize(("data", "reason"), [
    (_native("", as_of=""), "line 2: StockFeed has no asOf: when was the stock counted?"),
    (_native("", as_of='asOf="2026-11-23T06:00:00"'),
     "line 2: StockFeed asOf '2026-11-23T06:00:00' is not a date and time with a zone "
     "(2026-11-23T06:00:00Z)"),
    (_native("", as_of='asOf="2026-11-23T06:00:00Z" supplier="agriest"'),
     "line 2: StockFeed has the unknown attribute(s) supplier; only asOf is allowed"),
    (_native('<Item sku="AE-1" quantity="1"/><Total>1</Total>'),
     "line 3: Total is not expected in StockFeed, which holds only Item elements"),
    (b'<StockFeed xmlns="urn:orderhub:stock-feed:2" asOf="2026-11-23T06:00:00Z"/>',
     "unknown root element 'StockFeed' in namespace 'urn:orderhub:stock-feed:2'; expected a "
     "UBL 2.1 InventoryReport or an OrderHub StockFeed (urn:orderhub:stock-feed:1)"),
    (b"<Root><Data><SKU>AE-1</SKU><AvailableQuantity>4</AvailableQuantity></Data></Root>",
     "unknown root element 'Root' (no namespace); expected a UBL 2.1 InventoryReport or an "
     "OrderHub StockFeed (urn:orderhub:stock-feed:1)"),
])
def test_an_invalid_native_feed_is_refused(data: bytes, reason: str) -> None:
    assert schema_problem(data) is not None

    assert refused(data, name="stock.xml") == reason


def test_an_empty_native_feed_says_nothing_is_in_stock() -> None:
    data = _native("")
    assert schema_problem(data) is None

    assert read(data, name="stock.xml") == ([], FeedProblems(as_of=COUNTED, format="orderhub"))


def test_examples_in_formats_md_are_the_fixtures() -> None:
    section = FORMATS_MD.read_text().split("# Stock feeds", 1)[1]
    csv_example = re.search(r"```csv\n(.*?)```", section, flags=re.S)
    xml_example = re.search(r"```xml\n(<\?xml.*?)```", section, flags=re.S)
    assert csv_example is not None and xml_example is not None
    assert csv_example.group(1).encode() == fixture("csv_comma.csv")
    assert xml_example.group(1).encode() == fixture("orderhub_stock_feed.xml")


# ---------------------------------------------------------------- hostile XML


XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE StockFeed [<!ENTITY stolen SYSTEM '
       b'"file:///etc/passwd">]>\n<StockFeed xmlns="urn:orderhub:stock-feed:1" '
       b'asOf="2026-11-23T06:00:00Z"><Item sku="&stolen;" quantity="1"/></StockFeed>')
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE StockFeed [<!ENTITY a "aaaaaaaaaa">'
          + b"".join(f'<!ENTITY {chr(99 + n)} "{("&" + chr(98 + n) + ";") * 10}">'.encode()
                     for n in range(8)).replace(b"&b;", b"&a;")
          + b']>\n<StockFeed xmlns="urn:orderhub:stock-feed:1" asOf="2026-11-23T06:00:00Z">'
          b'<Item sku="AE-1" quantity="1" warehouse="&j;"/></StockFeed>')
EXTERNAL_DTD = (b'<?xml version="1.0"?>\n<!DOCTYPE StockFeed SYSTEM "http://127.0.0.1:9/feed.dtd">'
                b'\n<StockFeed xmlns="urn:orderhub:stock-feed:1" asOf="2026-11-23T06:00:00Z">'
                b'<Item sku="AE-1" quantity="1"/></StockFeed>')
UNDECLARED = (b'<StockFeed xmlns="urn:orderhub:stock-feed:1" asOf="2026-11-23T06:00:00Z">'
              b'<Item sku="&stolen;" quantity="1"/></StockFeed>')


@pytest.mark.parametrize("data", [XXE, LAUGHS, EXTERNAL_DTD, UNDECLARED],
                         ids=["external-entity", "billion-laughs", "external-dtd", "undeclared"])
def test_hostile_xml_is_refused_cleanly(data: bytes) -> None:
    started = time.perf_counter()

    reason = refused(data, name="stock.xml")

    assert time.perf_counter() - started < 2
    assert "root:" not in reason  # nothing of /etc/passwd
    assert (reason.startswith("the document declares a DOCTYPE")
            or reason.startswith("not well-formed XML: "))
    assert schema_problem(data) is not None


def test_an_undeclared_entity_is_named() -> None:
    assert refused(UNDECLARED, name="stock.xml") == (
        "not well-formed XML: line 1: Entity 'stolen' not defined")


def test_the_billion_laughs_fixture_really_nests() -> None:
    # Nine levels of ten: 10^9 characters if anything expanded it.
    assert LAUGHS.count(b"<!ENTITY") == 9 and b'<!ENTITY j "&i;&i;' in LAUGHS


# ---------------------------------------------------------------- a million lines


class GeneratedFeed(io.RawIOBase):
    """A CSV feed of `lines` rows made while it is read: the test holds no file either."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self._blocks = iter(self._make(lines))
        self._view = memoryview(b"sku,quantity,warehouse,as_of\n")

    @staticmethod
    def _make(lines: int) -> Iterator[bytes]:
        for first in range(0, lines, 1_000):
            yield b"".join(b"SKU-%07d,%d,W%d,2026-11-23T06:00:00Z\n" % (n, n % 50, n % 3)
                           for n in range(first, min(lines, first + 1_000)))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if not self._view:
            self._view = memoryview(next(self._blocks, b""))
        target = memoryview(buffer).cast("B")
        size = min(len(target), len(self._view))
        target[:size] = self._view[:size]
        self._view = self._view[size:]
        return size


def _peak_rss_kib() -> int | None:
    """The process's peak resident memory since the last reset (Linux), else None."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found[1]) if found else None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:  # "5": reset the peak to now
            clear.write("5")
    except OSError:
        return False
    return True


def test_a_million_line_feed_streams_in_bounded_memory_and_time() -> None:
    measured = _reset_peak_rss()
    before = _peak_rss_kib()
    problems = FeedProblems()
    units = rows = 0
    started = time.perf_counter()

    for row in read_feed(GeneratedFeed(1_000_000), name="stock.csv", problems=problems):
        units += row.quantity
        rows += 1

    seconds = time.perf_counter() - started
    assert (rows, problems.bad_rows, problems.as_of) == (1_000_000, 0, COUNTED)
    assert units == sum(n % 50 for n in range(1_000_000))
    assert seconds < 60, seconds  # about 2-3 s on a laptop
    after = _peak_rss_kib()
    if measured and before is not None and after is not None:
        # Holding the rows would take hundreds of MB; a stream needs a few buffers.
        assert after - before < 20 * 1024, f"peak RSS grew by {after - before} KiB"


@pytest.mark.parametrize("lines", [100_000])
def test_python_allocations_do_not_grow_with_the_feed(lines: int) -> None:
    # tracemalloc slows every allocation about tenfold, so it watches a tenth of the million.
    problems = FeedProblems()
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_feed(GeneratedFeed(lines), name="stock.csv",
                                         problems=problems))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert count == lines
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"  # 100,000 rows held: over 20 MB


def test_xml_feeds_stream_too() -> None:
    items = "".join(f'<Item sku="SKU-{n:07d}" quantity="{n % 50}" warehouse="W{n % 3}"/>\n'
                    for n in range(1_000))
    data = _native(items * 50)  # 50,000 items: each line is dropped once read
    problems = FeedProblems()
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_feed(io.BytesIO(data), name="stock.xml", problems=problems))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert count == 50_000 and problems.bad_rows == 0
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
