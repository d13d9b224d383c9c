"""Suppliers' shipment notices: what OrderHub reads from CSV files, a cXML ShipNoticeRequest, a
UBL 2.1 DespatchAdvice and its own ShipmentNotice, and that broken or hostile files are refused
with a reason naming the line and the column or element.

Fixtures in `tests/fixtures/shipments/` are shaped like the documented examples: the cXML
User's Guide ShipNoticeRequest (with a ShipNoticePortion without items), the OASIS UBL 2.1
example instance `UBL-DespatchAdvice-2.1-Example.xml` (consignment, delivery, despatch lines
referencing the order line and order), FORMATS.md's CSV layout and native example. They ship
PO `shopify-1042-agriest` v1: line 1 AG-BED-CED-L x 2, line 3 AG-TRWL x 1.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from app.errors import OrderHubError
from shipment.notices import (
    MAX_NOTICE_BYTES,
    CsvColumns,
    NoticeInvalid,
    Package,
    ShipmentNotice,
    ShippedLine,
    parse_notice,
)
from tests.unit.helpers import utc

FIXTURES = Path(__file__).parent.parent / "fixtures" / "shipments"
FORMATS_MD = Path(__file__).parents[2] / "app" / "documents" / "FORMATS.md"
CXML_DOCTYPE = '<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.050/Fulfill.dtd">'
DHL_URL = ("https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?"
           "piececode=00340434161094042557")
DHL = Package("DHL Paket", "00340434161094042557", DHL_URL)
BED = ShippedLine(line_number=1, sku="AG-BED-CED-L", supplier_sku=None, quantity=2)
TROWEL = ShippedLine(line_number=3, sku="AG-TRWL", supplier_sku=None, quantity=1)
CSV_HEADER = "po_number,line_number,sku,quantity,carrier,tracking_number,tracking_url,shipped_at\n"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str) -> list[ShipmentNotice]:
    return parse_notice(fixture(name), name=name)


def only(data: bytes, name: str = "notice.xml") -> ShipmentNotice:
    notices = parse_notice(data, name=name)
    assert len(notices) == 1, notices
    return notices[0]


def refused(data: bytes, name: str = "notice.xml", **kwargs: CsvColumns) -> NoticeInvalid:
    with pytest.raises(NoticeInvalid) as caught:
        parse_notice(data, name=name, **kwargs)
    return caught.value


def csv_rows(*rows: str, header: str = CSV_HEADER) -> bytes:
    return (header + "".join(row + "\n" for row in rows)).encode()


# ---------------------------------------------------------------- CSV


def test_csv_with_commas_is_one_notice_for_one_parcel() -> None:
    assert parse("csv_comma.csv") == [ShipmentNotice(
        po_number="shopify-1042-agriest",
        po_file_name=None,
        version=None,
        shipment_id=None,
        shipped_at=utc(2026, 11, 23, 9, 5),  # 10:05+01:00
        packages=(DHL,),
        lines=(BED, TROWEL),
        format="csv",
    )]


def test_csv_with_semicolons_and_a_bom_reads_like_the_comma_file() -> None:
    # Excel's export: BOM, CRLF, header in its own case with stray spaces, an extra column
    # whose values hold commas and semicolons in quotes, a date without a time.
    notice, = parse("csv_semicolon_bom.csv")
    assert notice.lines == (BED, TROWEL)
    assert notice.packages == (Package("DHL Paket", "00340434161094042557", None),)
    assert notice.shipped_at == utc(2026, 11, 23)  # a date alone is midnight UTC
    assert notice.po_number == "shopify-1042-agriest"


def test_csv_parcels_of_one_order_are_separate_notices_and_no_line_is_counted_twice() -> None:
    notices = parse("csv_multi_package.csv")

    assert [(n.po_number, [p.tracking_number for p in n.packages]) for n in notices] == [
        ("shopify-1042-agriest", ["00340434161094042557"]),
        ("shopify-1042-agriest", ["00340434161094042564"]),
        ("shopify-1043-agriest", ["1Z999AA10123456784"]),
    ]
    assert [[(line.line_number, line.quantity) for line in n.lines] for n in notices] == [
        [(1, 1)], [(1, 1), (3, 1)], [(1, 1)]]
    assert notices[2].packages[0] == Package(
        "UPS", "1Z999AA10123456784", "https://www.ups.com/track?tracknum=1Z999AA10123456784")


def test_csv_rows_with_a_shipment_id_are_one_notice_with_several_parcels() -> None:
    header = "shipment_id," + CSV_HEADER
    data = csv_rows("DN-7781,shopify-1042-agriest,1,AG-BED-CED-L,1,DHL Paket,TRK-A,,2026-11-23",
                    "DN-7781,shopify-1042-agriest,1,AG-BED-CED-L,1,DHL Paket,TRK-B,,",
                    "DN-7781,shopify-1042-agriest,3,AG-TRWL,1,,TRK-B,,2026-11-23",
                    "DN-7790,shopify-1042-agriest,1,AG-BED-CED-L,1,GLS,TRK-C,,2026-11-24",
                    header=header)
    first, second = parse_notice(data, name="shipments.csv")

    assert first.shipment_id == "DN-7781"
    assert first.packages == (Package("DHL Paket", "TRK-A", None),
                              Package("DHL Paket", "TRK-B", None))
    assert [(line.line_number, line.quantity) for line in first.lines] == [(1, 1), (1, 1), (3, 1)]
    assert first.shipped_at == utc(2026, 11, 23)
    assert (second.shipment_id, second.packages) == ("DN-7790",
                                                     (Package("GLS", "TRK-C", None),))


def test_csv_partial_shipment_names_lines_by_sku() -> None:
    notice, = parse("csv_partial.csv")
    assert notice.lines == (ShippedLine(None, "AG-BED-CED-L", None, 1),)
    assert notice.packages == (Package("DHL Paket", "00340434161094042557", None),)
    assert notice.shipped_at is None


def test_csv_with_tabs_keeps_carrier_names_in_any_script() -> None:
    notices = parse("csv_unicode_carriers.csv")
    assert [(n.po_number, n.packages[0].carrier, n.packages[0].tracking_number, n.lines)
            for n in notices] == [
        ("shopify-1044-agriest", "ヤマト運輸", "4567-8901-2345", (ShippedLine(1, None, None, 1),)),
        ("shopify-1045-agriest", "Österreichische Post", "RR123456785AT",
         (ShippedLine(1, None, None, 2),)),
        ("shopify-1046-agriest", "Ελληνικά Ταχυδρομεία", "RB123456785GR",
         (ShippedLine(2, None, None, 1),)),
    ]


def test_csv_with_wrong_columns_lists_what_it_found_and_what_is_expected() -> None:
    error = refused(fixture("csv_wrong_columns.csv"), "csv_wrong_columns.csv")
    assert error.format == "csv"
    assert error.reason == (
        "the header has the columns 'Order', 'Item', 'Qty', 'Tracking' (split at ','); expected "
        "po_number, quantity, and sku or line_number (optional: carrier, tracking_number, "
        "tracking_url, shipped_at, supplier_sku, shipment_id)")


def test_csv_column_names_are_configured_per_supplier() -> None:
    columns = CsvColumns(po_number="Bestellnummer", sku="Artikel", quantity="Menge",
                         carrier="Versender", tracking_number="Sendungsnummer",
                         shipped_at="Versanddatum")
    data = (b"Bestellnummer;Artikel;Menge;Versender;Sendungsnummer;Versanddatum\n"
            b"shopify-1042-agriest;AG-BED-CED-L;2;Deutsche Post;RR123456785DE;2026-11-23 "
            b"10:05\n")
    notice, = parse_notice(data, name="versand.csv", columns=columns)
    assert notice.lines == (ShippedLine(None, "AG-BED-CED-L", None, 2),)
    assert notice.packages == (Package("Deutsche Post", "RR123456785DE", None),)
    assert notice.shipped_at == utc(2026, 11, 23, 10, 5)  # no zone: UTC

    # The default names are then unknown: the error names the configured ones.
    error = refused(fixture("csv_comma.csv"), "x.csv", columns=columns)
    assert "expected Bestellnummer, Menge, and Artikel or line_number" in error.reason


def test_csv_supplier_sku_is_kept_and_stands_in_for_a_missing_sku() -> None:
    header = "po_number,line_number,supplier_sku,quantity\n"
    notice = only(csv_rows("shopify-1042-agriest,1,AE-55012,2", header=header), "s.csv")
    assert notice.lines == (ShippedLine(1, "AE-55012", "AE-55012", 2),)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("shopify-1042-agriest,1,AG-BED-CED-L,0,,,,",
         "line 2, column quantity '0' is not a whole number of units above 0"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,1.000,,,,", "column quantity '1.000' is not"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,2.5,,,,", "column quantity '2.5' is not"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,-1,,,,", "column quantity '-1' is not"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,,,,,",
         "line 2, column quantity is empty: how many units shipped?"),
        (",1,AG-BED-CED-L,1,,,,", "line 2, column po_number is empty"),
        ("shopify-1042-agriest,first,AG-BED-CED-L,1,,,,",
         "line 2, column line_number 'first' is not a PO line number"),
        ("shopify-1042-agriest,,,1,DHL,,,", "line 2 gives neither a line number nor a SKU"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,1,,,,23.11.2026",
         "line 2, column shipped_at '23.11.2026' is not an ISO 8601 date"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,1,,,,2026-02-30",
         "line 2, column shipped_at '2026-02-30' is not a valid date"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,1,,T1,javascript:alert(1),",
         "line 2, column tracking_url 'javascript:alert(1)' is not an http or https URL"),
        ("shopify-1042-agriest,1,AG-BED-CED-L,1,DHL, Express,T1,,",
         "line 2 has 9 values but the header has 8 columns"),
        ('shopify-1042-agriest,1,"AG-BED"-CED-L,1,,,,', "line 2: ',' expected after '\"'"),
    ],
    ids=["zero", "thousands", "fraction", "negative", "no-quantity", "no-po", "bad-line",
         "no-line-no-sku", "german-date", "impossible-date", "script-url", "unquoted-comma",
         "bad-quotes"],
)
def test_csv_bad_row_is_refused_naming_line_and_column(row: str, expected: str) -> None:
    error = refused(csv_rows(row), "shipments.csv")
    assert expected in error.reason
    assert error.format == "csv"


def test_csv_error_names_the_line_in_the_file_not_the_row_count() -> None:
    data = csv_rows("", "shopify-1042-agriest,1,AG-BED-CED-L,2,,,,",
                    'shopify-1042-agriest,3,"AG-TRWL\nsecond line",1,,,,',
                    "shopify-1042-agriest,3,AG-TRWL,x,,,,")
    assert "line 6, column quantity 'x'" in refused(data, "s.csv").reason


def test_csv_rows_contradicting_each_other_are_refused() -> None:
    dates = csv_rows("shopify-1042-agriest,1,AG-BED-CED-L,2,DHL,T1,,2026-11-23",
                     "shopify-1042-agriest,3,AG-TRWL,1,DHL,T1,,2026-11-24")
    assert ("line 3, column shipped_at '2026-11-24' contradicts line 2 ('2026-11-23') of the "
            "same shipment") in refused(dates, "s.csv").reason

    carriers = csv_rows("shopify-1042-agriest,1,AG-BED-CED-L,2,DHL,T1,,",
                        "shopify-1042-agriest,3,AG-TRWL,1,UPS,T1,,")
    assert "line 3, column carrier 'UPS' contradicts line 2 ('DHL') for the same parcel" in (
        refused(carriers, "s.csv").reason)


def test_csv_rows_without_tracking_are_one_notice_per_order() -> None:
    data = csv_rows("shopify-1042-agriest,1,AG-BED-CED-L,2,Spedition Nord,,,",
                    "shopify-1042-agriest,3,AG-TRWL,1,,,,")
    notice = only(data, "s.csv")
    assert notice.packages == (Package("Spedition Nord", None, None),)
    assert notice.lines == (BED, TROWEL)

    untracked = only(csv_rows("shopify-1042-agriest,1,AG-BED-CED-L,2,,,,"), "s.csv")
    assert untracked.packages == ()


def test_csv_may_quote_our_payload_id_or_file_name_instead_of_the_po_number() -> None:
    data = csv_rows("shopify-1042-agriest.v2@orderhub,1,AG-BED-CED-L,2,,,,",
                    "PO_agriest_shopify-1043_v1.xml,1,AG-BED-CED-L,1,,,,")
    by_payload_id, by_file_name = parse_notice(data, name="s.csv")
    assert (by_payload_id.po_number, by_payload_id.po_file_name, by_payload_id.version) == (
        "shopify-1042-agriest", None, 2)
    assert (by_file_name.po_number, by_file_name.po_file_name, by_file_name.version) == (
        None, "PO_agriest_shopify-1043_v1.xml", 1)


def test_csv_with_only_a_header_says_nothing_shipped() -> None:
    assert parse_notice(CSV_HEADER.encode() + b"\n\n", name="s.csv") == []


def test_csv_naming_a_column_twice_is_refused() -> None:
    data = csv_rows("shopify-1042-agriest,2,1,AG", header="po_number,quantity,SKU,sku\n")
    assert "column 'sku' appears twice in the header (columns 3 and 4)" in (
        refused(data, "s.csv").reason)


def test_csv_that_is_not_utf8_is_refused_with_the_line() -> None:
    data = csv_rows("shopify-1045-agriest,1,,2,Österreichische Post,RR123456785AT,,")
    error = refused(data.decode().encode("latin-1"), "s.csv")
    assert error.reason == ("the file is not UTF-8: byte 0xd6 on line 2 cannot be read; save "
                            "the file as UTF-8")


def test_csv_with_a_nul_character_is_refused() -> None:
    data = csv_rows("shopify-1042-agriest,1,AG-BED\x00,2,,,,")
    assert "line 2 contains a NUL character" in refused(data, "s.csv").reason


# ---------------------------------------------------------------- cXML ShipNoticeRequest


def test_cxml_ship_notice_like_the_guides_example() -> None:
    assert parse("cxml_ship_notice.xml") == [ShipmentNotice(
        po_number="shopify-1042-agriest",
        po_file_name=None,
        version=1,
        shipment_id="AE-SH-20261123-0042",
        shipped_at=utc(2026, 11, 23, 9, 5),  # shipmentDate 10:05+01:00
        packages=(DHL,),  # the billOfLading identifier is not a parcel
        lines=(ShippedLine(1, "AG-BED-CED-L", "AE-55012", 2),
               ShippedLine(3, "AG-TRWL", "AG-TRWL", 1)),
        format="cxml",
    )]


def test_cxml_portion_without_items_means_the_whole_order_shipped() -> None:
    whole, partial = parse("cxml_ship_notice_whole_order.xml")

    assert (whole.po_number, whole.version, whole.lines) == ("shopify-1042-agriest", 1, ())
    # One notice per portion; the parcel belongs to the request, so both list it.
    assert whole.packages == partial.packages == (
        Package("Federal Express", "7946 1234 5678", None),)  # companyName before SCAC
    assert (partial.po_number, partial.version) == ("shopify-1043-agriest", 2)
    # Line 3 says quantity 0: not shipped, left out.
    assert partial.lines == (ShippedLine(1, "AG-BED-CED-L", "AE-55012", 1),)
    assert whole.shipment_id == partial.shipment_id == "AE-SH-20261124-0007"
    assert whole.shipped_at == utc(2026, 11, 24, 13, 30)  # 08:30-05:00


def _cxml(old: str = "", new: str = "", name: str = "cxml_ship_notice.xml") -> bytes:
    xml = fixture(name).decode()
    assert old in xml
    return xml.replace(old, new, 1).encode()


def test_cxml_carrier_falls_back_to_the_scac_code() -> None:
    xml = _cxml('<CarrierIdentifier domain="companyName">Federal Express</CarrierIdentifier>',
                name="cxml_ship_notice_whole_order.xml")
    assert parse_notice(xml, name="n.xml")[0].packages[0].carrier == "FDE"


def test_cxml_update_replaces_an_earlier_notice_and_delete_is_refused() -> None:
    assert only(_cxml('operation="new"', 'operation="update"')).operation == "update"
    error = refused(_cxml('operation="new"', 'operation="delete"'))
    assert "ShipNoticeHeader/@operation 'delete' (line 24) is not supported" in error.reason


def test_cxml_planned_shipment_applies_nothing() -> None:
    assert parse_notice(_cxml('shipmentType="actual"', 'shipmentType="planned"'),
                        name="n.xml") == []


def test_cxml_without_shipment_date_takes_the_notice_date() -> None:
    xml = _cxml('shipmentDate="2026-11-23T10:05:00+01:00"', "")
    assert only(xml).shipped_at == utc(2026, 11, 23, 10, 5)  # noticeDate 11:05+01:00


def test_cxml_portion_whose_items_are_all_zero_gives_no_notice() -> None:
    xml = _cxml('quantity="1" lineNumber="1"', 'quantity="0" lineNumber="1"',
                name="cxml_ship_notice_whole_order.xml")
    assert [n.po_number for n in parse_notice(xml, name="n.xml")] == ["shopify-1042-agriest"]


def test_cxml_quantity_may_be_a_whole_decimal_but_not_a_fraction() -> None:
    assert only(_cxml('quantity="2"', 'quantity="2.000"')).lines[0].quantity == 2
    error = refused(_cxml('quantity="2"', 'quantity="1.5"'))
    assert "ShipNoticeItem (line 45) @quantity '1.5' is not a whole number of units" in (
        error.reason)


def test_cxml_order_id_may_be_our_file_name() -> None:
    xml = _cxml('orderID="shopify-1042-agriest"', 'orderID="PO_agriest_shopify-1042_v1.xml"')
    notice = only(xml)
    assert (notice.po_number, notice.po_file_name, notice.version) == (
        "shopify-1042-agriest", "PO_agriest_shopify-1042_v1.xml", 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('orderID="shopify-1042-agriest"', 'orderID="shopify-9-agriest"',
         "names PO 'shopify-9-agriest' but quotes payload id 'shopify-1042-agriest.v1@orderhub'"),
        ('shipmentID="AE-SH-20261123-0042"', "",
         "ShipNoticeHeader/@shipmentID is missing or empty (line 24)"),
        ('noticeDate="2026-11-23T11:05:00+01:00"', 'noticeDate="Monday"',
         "@noticeDate (line 24) 'Monday' is not an ISO 8601"),
        ('trackingURL="https://www.dhl', 'trackingURL="javascript:alert(1)//www.dhl',
         "@trackingURL (line 38) 'javascript:alert(1)//www.dhl"),
        ('quantity="2" lineNumber="1"', 'quantity="2" lineNumber="one"',
         "ShipNoticeItem (line 45) @lineNumber 'one' is not a PO line number"),
        ("<ShipNoticeRequest>", "<ConfirmationRequest>", "not well-formed XML"),
    ],
    ids=["contradicting-payload-id", "no-shipment-id", "bad-notice-date", "script-url",
         "bad-line-number", "mismatched-tags"],
)
def test_cxml_broken_notice_is_refused_naming_the_element(old: str, new: str,
                                                          expected: str) -> None:
    error = refused(_cxml(old, new))
    assert expected in error.reason
    assert error.format == ("cxml" if "well-formed" not in expected else None)


def test_cxml_portion_without_order_reference_is_refused() -> None:
    xml = re.sub(rb"<OrderReference .*?</OrderReference>", b"", _cxml(), flags=re.S)
    assert "ShipNoticePortion (line 41) has no OrderReference" in refused(xml).reason


def test_cxml_other_requests_are_not_ship_notices() -> None:
    xml = _cxml().replace(b"ShipNoticeRequest>", b"ConfirmationRequest>")
    assert "cXML/Request holds ConfirmationRequest (line 22), not a ShipNoticeRequest" in (
        refused(xml).reason)


def test_cxml_without_doctype_is_read_and_another_doctype_is_refused() -> None:
    assert only(_cxml(CXML_DOCTYPE, "")).shipment_id == "AE-SH-20261123-0042"
    error = refused(_cxml(CXML_DOCTYPE, '<!DOCTYPE cXML SYSTEM "file:///etc/passwd">'))
    assert "unexpected DOCTYPE SYSTEM identifier 'file:///etc/passwd'" in error.reason


# ---------------------------------------------------------------- UBL DespatchAdvice


def test_ubl_despatch_advice_like_the_oasis_example() -> None:
    assert parse("ubl_despatch_advice.xml") == [ShipmentNotice(
        po_number="shopify-1042-agriest",
        po_file_name=None,
        version=1,  # cac:OrderReference/cbc:UUID is our payload id
        shipment_id="AE-DA-565899",
        shipped_at=utc(2026, 11, 23, 9, 5),  # ActualDespatchDate/Time 10:05+01:00
        # The consignment and cac:Delivery/cbc:TrackingID give the same number: one parcel.
        packages=(Package("DHL Paket", "00340434161094042557", None),),
        lines=(ShippedLine(1, "AG-BED-CED-L", "AE-55012", 2),
               ShippedLine(3, "AG-TRWL", None, 1)),  # line 3 relies on the header reference
        format="ubl",
    )]


def _ubl(*replacements: tuple[str, str]) -> bytes:
    xml = fixture("ubl_despatch_advice.xml").decode()
    for old, new in replacements:
        assert re.search(old, xml, flags=re.S), old
        xml = re.sub(old, new, xml, count=1, flags=re.S)
    return xml.encode()


CONSIGNMENT = r"<cac:Consignment>.*?</cac:Consignment>\s*"
TRACKING_ID = r"<cbc:TrackingID>.*?</cbc:TrackingID>\s*"
DESPATCH = r"<cac:Despatch>.*?</cac:Despatch>\s*"


@pytest.mark.parametrize(
    ("replacements", "expected"),
    [
        ([(CONSIGNMENT, "<cac:Consignment><cbc:ID>1</cbc:ID></cac:Consignment>")],
         [Package(None, "00340434161094042557", None)]),
        ([(TRACKING_ID, "")], [Package("DHL Paket", "00340434161094042557", None)]),
        ([(TRACKING_ID, "<cbc:TrackingID>00340434161094042564</cbc:TrackingID>")],
         [Package("DHL Paket", "00340434161094042557", None),
          Package("DHL Paket", "00340434161094042564", None)]),
        ([(CONSIGNMENT, "<cac:Consignment><cbc:ID>1</cbc:ID></cac:Consignment>"),
          (TRACKING_ID, ""),
          (DESPATCH, "<cac:CarrierParty><cac:PartyName><cbc:Name>Spedition Nord</cbc:Name>"
                     "</cac:PartyName></cac:CarrierParty>")],
         [Package("Spedition Nord", None, None)]),
        ([(r"<cac:Shipment>.*</cac:Shipment>\s*", "")], []),
    ],
    ids=["delivery-tracking-id", "consignment-id", "both-differ", "carrier-only", "no-shipment"],
)
def test_ubl_tracking_is_read_from_the_consignment_and_the_delivery(
    replacements: list[tuple[str, str]], expected: list[Package]
) -> None:
    assert list(only(_ubl(*replacements)).packages) == expected


def test_ubl_shipped_at_falls_back_to_delivery_date_then_issue_date() -> None:
    delivered = _ubl((DESPATCH, ""), (TRACKING_ID, "<cbc:ActualDeliveryDate>2026-11-24"
                                                   "</cbc:ActualDeliveryDate>"))
    assert only(delivered).shipped_at == utc(2026, 11, 24)
    assert only(_ubl((DESPATCH, ""))).shipped_at == utc(2026, 11, 23, 10, 2)  # 11:02+01:00


def test_ubl_lines_not_delivered_are_left_out() -> None:
    xml = _ubl(('<cbc:DeliveredQuantity unitCode="C62">1<',
                '<cbc:DeliveredQuantity unitCode="C62">0<'))
    assert [line.line_number for line in only(xml).lines] == [1]

    nothing = _ubl(('<cbc:DeliveredQuantity unitCode="C62">2<',
                    '<cbc:DeliveredQuantity unitCode="C62">0<'),
                   ('<cbc:DeliveredQuantity unitCode="C62">1<',
                    '<cbc:DeliveredQuantity unitCode="C62">0<'))
    assert parse_notice(nothing, name="n.xml") == []


def test_ubl_line_id_na_relies_on_the_sku() -> None:
    xml = _ubl(("<cbc:LineID>1</cbc:LineID>", "<cbc:LineID>NA</cbc:LineID>"))
    assert only(xml).lines[0] == ShippedLine(None, "AG-BED-CED-L", "AE-55012", 2)


def test_ubl_despatch_advice_for_two_orders_gives_two_notices() -> None:
    other = ("<cac:OrderReference><cbc:ID>shopify-1043-agriest</cbc:ID></cac:OrderReference>"
             "</cac:OrderLineReference>")
    xml = _ubl((r"<cbc:SalesOrderLineID>20</cbc:SalesOrderLineID>\s*</cac:OrderLineReference>",
                "<cbc:SalesOrderLineID>20</cbc:SalesOrderLineID>" + other))
    notices = parse_notice(xml, name="n.xml")
    assert [(n.po_number, n.version, [line.line_number for line in n.lines])
            for n in notices] == [("shopify-1042-agriest", 1, [1]),
                                  ("shopify-1043-agriest", None, [3])]


@pytest.mark.parametrize(
    ("replacements", "expected"),
    [
        ([("<cbc:IssueDate>2026-11-23<", "<cbc:IssueDate>23.11.2026<")],
         "line 11: Element 'cbc:IssueDate': '23.11.2026' is not a valid value of the atomic "
         "type 'xs:date'."),
        ([(r"<cac:Item>.*?</cac:Item>", "")], "line 95: Element 'cac:DespatchLine': Missing "
                                              "child element(s)."),
        ([(r'<cbc:DeliveredQuantity unitCode="C62">2</cbc:DeliveredQuantity>\s*', "")],
         "cac:DespatchLine (line 95) has no cbc:DeliveredQuantity: how many shipped?"),
        ([('unitCode="C62">2<', 'unitCode="C62">1.5<')],
         "cac:DespatchLine (line 95) cbc:DeliveredQuantity '1.5' is not a whole number"),
        ([("<cbc:LineID>1</cbc:LineID>", "<cbc:LineID>A</cbc:LineID>")],
         "cac:OrderLineReference/cbc:LineID 'A' is not a PO line number"),
        ([(r"<cac:OrderReference>.*?</cac:OrderReference>\s*", "")],
         "cac:DespatchLine (line 119) names no order (cac:OrderLineReference/cac:OrderReference) "
         "and the document has 0 cac:OrderReference"),
        ([(r"<cac:OrderLineReference>", "<cac:OrderLineReference><cbc:LineID>2</cbc:LineID>"
                                        "</cac:OrderLineReference><cac:OrderLineReference>")],
         "cac:DespatchLine (line 95) names 2 order lines"),
        ([(r"<cbc:UUID>shopify-1042-agriest.v1", "<cbc:UUID>shopify-1043-agriest.v1")],
         "names PO 'shopify-1042-agriest' but quotes payload id 'shopify-1043-agriest.v1"),
        ([("<DespatchAdvice ", "<!DOCTYPE DespatchAdvice>\n<DespatchAdvice ")],
         "DespatchAdvice must not declare a DOCTYPE"),
    ],
    ids=["bad-date", "no-item", "no-quantity", "fraction", "line-letter", "no-order",
         "two-order-lines", "contradicting-payload-id", "doctype"],
)
def test_ubl_broken_despatch_advice_is_refused_naming_the_element(
    replacements: list[tuple[str, str]], expected: str
) -> None:
    error = refused(_ubl(*replacements))
    assert expected in error.reason
    assert error.format == "ubl"


# ---------------------------------------------------------------- OrderHub's own format


NATIVE = ShipmentNotice(
    po_number="shopify-1042-agriest",
    po_file_name=None,
    version=1,
    shipment_id="AE-SH-20261123-0042",
    shipped_at=utc(2026, 11, 23, 9, 5),
    packages=(DHL, Package("DHL Paket", "00340434161094042564", None)),
    lines=(BED, TROWEL),
    format="orderhub",
)


def test_native_notice() -> None:
    assert parse("orderhub_shipment_notice.xml") == [NATIVE]


def test_native_example_in_formats_md_is_the_fixture() -> None:
    section = FORMATS_MD.read_text().split("## OrderHub shipment notice, version 1", 1)[1]
    example = re.search(r"```xml\n(.*?)```", section, flags=re.S)
    assert example is not None
    assert example.group(1).encode() == fixture("orderhub_shipment_notice.xml")


def test_csv_example_in_formats_md_is_the_multi_package_fixture() -> None:
    section = FORMATS_MD.read_text().split("## Shipment notices as CSV", 1)[1]
    example = re.search(r"```csv\n(.*?)```", section, flags=re.S)
    assert example is not None
    assert example.group(1).encode() == fixture("csv_multi_package.csv")


def _native(old: str, new: str) -> bytes:
    """The fixture with `old` (a regular expression when it has ".*") replaced once."""
    xml = fixture("orderhub_shipment_notice.xml").decode()
    if ".*" not in old:
        old = re.escape(old)
    assert re.search(old, xml, flags=re.S), old
    return re.sub(old, new, xml, count=1, flags=re.S).encode()


def test_native_notice_without_lines_means_the_whole_po_shipped() -> None:
    notice = only(_native(r"\s*<Line>.*</Line>", ""))
    assert notice.lines == ()
    assert notice.packages == NATIVE.packages


def test_native_notice_may_name_the_po_by_our_payload_id() -> None:
    xml = _native("<PoNumber>shopify-1042-agriest<",
                  "<PoNumber>shopify-1042-agriest.v1@orderhub<")
    assert (only(xml).po_number, only(xml).version) == ("shopify-1042-agriest", 1)
    contradicting = xml.replace(b"<Version>1<", b"<Version>2<")
    assert "ShipmentNotice/Version 2 contradicts ShipmentNotice/PoNumber (line 3)" in (
        refused(contradicting).reason)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("<Quantity>2</Quantity>", "<Quantity>0</Quantity>",
         "line 19: Element 'Quantity': '0' is not a valid value of the atomic type "
         "'xs:positiveInteger'."),
        ("<PoNumber>shopify-1042-agriest</PoNumber>", "",
         "line 4: Element 'Version': This element is not expected. Expected is ( PoNumber )."),
        ("<LineNumber>3</LineNumber>", "<LineNumber>1</LineNumber>",
         "line 21: Element 'Line': Duplicate key-sequence ['1'] in unique identity-constraint "
         "'OneLinePerLineNumber'"),
        ("2026-11-23T10:05:00+01:00", "2026-11-23T10:05:00",
         "line 6: Element 'ShippedAt': [facet 'pattern']"),
        ("<TrackingUrl>https:", "<TrackingUrl>javascript:",
         "line 10: Element 'TrackingUrl': [facet 'pattern']"),
        (r"<Package>.*</Package>", "",
         "Element 'Line': This element is not expected. Expected is ( Package )."),
        ("<Sku>AG-TRWL</Sku>", "<Sku>  </Sku>", "line 23: Element 'Sku': [facet 'pattern']"),
    ],
    ids=["zero-quantity", "no-po-number", "line-twice", "no-zone", "script-url", "no-package",
         "blank-sku"],
)
def test_native_notice_invalid_against_its_schema_says_what_and_where(
    old: str, new: str, expected: str
) -> None:
    error = refused(_native(old, new))
    assert error.format == "orderhub"
    assert expected in error.reason


# ---------------------------------------------------------------- telling the format


def test_the_name_decides_csv_and_xml_and_the_content_decides_otherwise() -> None:
    xml, csv = fixture("orderhub_shipment_notice.xml"), fixture("csv_comma.csv")
    assert only(xml, "SHIP_0042").format == "orderhub"
    assert only(csv, "SHIP_0042").format == "csv"
    assert only(csv, "SHIP_0042.TXT").format == "csv"
    assert "not well-formed XML" in refused(csv, "ship.xml").reason
    # Named .csv, read as CSV: its first line is not a header OrderHub knows.
    assert "the header has the columns" in refused(xml, "ship.CSV").reason


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the file is empty"),
        (b" \r\n\t", "the file is empty"),
        (b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>",
         "unknown root element 'Invoice' in namespace "
         "'urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'; expected a cXML "
         "ShipNoticeRequest, a UBL 2.1 DespatchAdvice or an OrderHub ShipmentNotice"),
        (b"<PurchaseOrderAcknowledgement xmlns='urn:orderhub:purchase-order-ack:1'/>",
         "unknown root element 'PurchaseOrderAcknowledgement'"),
        (b"<ShipNoticeRequest/>", "unknown root element 'ShipNoticeRequest' (no namespace)"),
        (b"<ShipmentNotice xmlns='urn:orderhub:shipment-notice:1'>", "not well-formed XML"),
    ],
    ids=["empty", "blank", "ubl-invoice", "our-ack", "bare-cxml-part", "truncated"],
)
def test_what_is_not_a_shipment_notice_is_refused(data: bytes, expected: str) -> None:
    assert expected in refused(data).reason


def test_notice_invalid_is_an_orderhub_error_with_a_readable_message() -> None:
    error = refused(fixture("csv_wrong_columns.csv"), "x.csv")
    assert isinstance(error, OrderHubError)
    assert str(error).startswith("csv notice invalid: the header has the columns")


def test_utf16_xml_is_recognised_as_xml() -> None:
    xml = fixture("orderhub_shipment_notice.xml").decode().replace('encoding="UTF-8"',
                                                                    'encoding="UTF-16"')
    assert only(xml.encode("utf-16"), "SHIP_0042") == NATIVE


# ---------------------------------------------------------------- size and hostile files


@pytest.mark.parametrize("name", ["big.csv", "big.xml", "big"])
def test_a_50_mb_file_is_refused_cleanly_before_parsing(name: str) -> None:
    row = b"shopify-1042-agriest,1,AG-BED-CED-L,2,DHL Paket,00340434161094042557,,2026-11-23\n"
    data = CSV_HEADER.encode() + row * (50 * 1024 * 1024 // len(row) + 1)
    if name != "big.csv":
        data = b"<ShipmentNotice xmlns='urn:orderhub:shipment-notice:1'>" + data
    assert len(data) > 50 * 1024 * 1024

    started = time.perf_counter()
    error = refused(data, name)
    assert time.perf_counter() - started < 0.5
    assert error.reason == (f"the file has {len(data)} bytes, more than the {MAX_NOTICE_BYTES} "
                            "allowed")


def test_a_file_of_exactly_the_size_cap_is_read() -> None:
    xml = fixture("orderhub_shipment_notice.xml")
    # Comments after the root element; libxml2 refuses any single node above 10 MB.
    comment = b"<!--" + b"x" * (1024 * 1024 - 7) + b"-->\n"
    padded = xml + comment * (MAX_NOTICE_BYTES // len(comment))
    padded += b" " * (MAX_NOTICE_BYTES - len(padded))
    assert len(padded) == MAX_NOTICE_BYTES
    assert only(padded) == NATIVE


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    return secret


def _with_doctype(fmt: str, subset: str, reference: str) -> bytes:
    if fmt == "orderhub":
        xml = fixture("orderhub_shipment_notice.xml").replace(
            b"<ShipmentNotice ", f"<!DOCTYPE ShipmentNotice {subset}>\n<ShipmentNotice ".encode())
        return xml.replace(b"<Carrier>DHL Paket<", f"<Carrier>{reference}<".encode(), 1)
    if fmt == "ubl":
        xml = fixture("ubl_despatch_advice.xml").replace(
            b"<DespatchAdvice ", f"<!DOCTYPE DespatchAdvice {subset}>\n<DespatchAdvice ".encode())
        return xml.replace(b"<cbc:Note>Both", f"<cbc:Note>{reference} Both".encode(), 1)
    xml = fixture("cxml_ship_notice.xml").replace(CXML_DOCTYPE.encode(),
                                                   f"{CXML_DOCTYPE[:-1]} {subset}>".encode())
    return xml.replace(b"Everything in one parcel.", reference.encode())


@pytest.mark.parametrize("fmt", ["orderhub", "cxml", "ubl"])
def test_an_external_entity_is_refused_and_never_read(fmt: str, secret_file: Path) -> None:
    xml = _with_doctype(fmt, f'[<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]', "&xxe;")

    error = refused(xml)
    assert "declares entities or elements in its DOCTYPE" in error.reason
    assert "TOP-SECRET-CONTENT" not in str(error)


@pytest.mark.parametrize("fmt", ["orderhub", "cxml", "ubl"])
def test_an_entity_expansion_bomb_is_refused_at_once(fmt: str) -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    xml = _with_doctype(fmt, f"[{''.join(entities)}]", "&lol9;")

    started = time.perf_counter()
    error = refused(xml)
    assert time.perf_counter() - started < 1.0
    # libxml2 stops the expansion itself, or the declarations are refused after parsing.
    assert ("entity amplification" in error.reason
            or "declares entities" in error.reason), error.reason


def test_an_external_dtd_named_in_a_cxml_doctype_is_never_loaded(tmp_path: Path) -> None:
    # Were this DTD loaded, &injected; would expand to text and pass as a comment.
    evil = tmp_path / "Fulfill.dtd"
    evil.write_text('<!ENTITY injected "INJECTED-FROM-EVIL-DTD">')
    xml = fixture("cxml_ship_notice.xml").replace(
        CXML_DOCTYPE.encode(), f'<!DOCTYPE cXML SYSTEM "{evil.as_uri()}">'.encode())
    xml = xml.replace(b"Everything in one parcel.", b"&injected;")

    error = refused(xml)
    assert "INJECTED-FROM-EVIL-DTD" not in str(error)


def test_an_entity_reference_under_the_official_cxml_doctype_is_refused() -> None:
    # Undeclared here, it would come from the official DTD, which is never loaded.
    xml = fixture("cxml_ship_notice.xml").replace(b"Everything in one parcel.",
                                                  b"Thanks&nbsp;again.")
    assert "entity reference" in refused(xml).reason
