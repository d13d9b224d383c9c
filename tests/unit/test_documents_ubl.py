"""UBL 2.1 purchase orders: what a supplier reads in the rendered Order, OrderChange and
OrderCancellation, that every rendered document passes the official OASIS schemas, and that
`validate_ubl` rejects broken ones.

Golden files: `tests/fixtures/documents/golden_order{,_change,_cancel}.ubl.xml` hold the exact
bytes rendered from `golden_doc()`. When a change to the renderer's output is intended, write
them again and review the diff before committing:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_documents_ubl.py -k golden
    git diff tests/fixtures/documents/
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from app.documents.model import (
    Action,
    Contact,
    DocumentInvalid,
    Party,
    PoLine,
    PostalAddress,
    PurchaseOrderDoc,
)
from app.documents.ubl import (
    CAC,
    CBC,
    ORDER_CANCELLATION_NS,
    ORDER_CHANGE_NS,
    ORDER_NS,
    _schema,
    render_ubl,
    validate_ubl,
)
from tests.unit.helpers import utc

NS = {"cac": CAC, "cbc": CBC}
ROOT_TAGS = {
    "new": f"{{{ORDER_NS}}}Order",
    "change": f"{{{ORDER_CHANGE_NS}}}OrderChange",
    "cancel": f"{{{ORDER_CANCELLATION_NS}}}OrderCancellation",
}
GOLDEN_DIR = Path(__file__).parent.parent / "fixtures" / "documents"
GOLDEN_FILES: dict[Action, str] = {
    "new": "golden_order.ubl.xml",
    "change": "golden_order_change.ubl.xml",
    "cancel": "golden_order_cancel.ubl.xml",
}

SHIP_TO = PostalAddress(
    name="Dana Whitfield",
    company="Whitfield Landscaping",
    address1="1200 Alder Street",
    address2="Unit 4",
    city="Portland",
    region="Oregon",
    region_code="OR",
    postal_code="97205",
    country_code="US",
    country="United States",
    phone="+1 503 555 0142",
)
CUSTOMER = Contact(name="Dana Whitfield", email="dana@example.com", phone="+1 503 555 0199")
LINES = (
    PoLine(1, "GG-SEED-TOM", "AG-10077", "Tomato seeds, heirloom mix", 3, Decimal("4.25")),
    PoLine(2, "GG-TROWEL", "AG-20410", "Stainless hand trowel", 1, Decimal("12.90")),
    PoLine(3, "GG-GLOVES-M", "AG-31002", "Garden gloves, size M", 2, Decimal("7.5")),
)


def make_doc(**changes: Any) -> PurchaseOrderDoc:
    """A three-line USD purchase order (v1, "new"), with `changes` applied."""
    doc = PurchaseOrderDoc(
        po_number="1042-AGRIEST",
        version=1,
        action="new",
        issued_at=utc(2026, 11, 20, 14, 15, 3),
        order_number="#1042",
        order_placed_at=utc(2026, 11, 20, 14, 12, 40),
        currency="USD",
        buyer=Party(id="garden-goods", name="Garden Goods Co."),
        supplier=Party(id="agriest", name="Agriest Supply Inc."),
        ship_to=SHIP_TO,
        contact=CUSTOMER,
        lines=LINES,
        notes=None,
        payload_id="",
    )
    return dataclasses.replace(doc, **changes)


def render_valid(doc: PurchaseOrderDoc) -> Any:
    """Render `doc`, check it against the schema, and return the parsed root element."""
    xml = render_ubl(doc)
    validate_ubl(xml)
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    assert root.tag == ROOT_TAGS[doc.action]
    return root


def texts(node: Any, path: str) -> list[str]:
    return [str(value) for value in node.xpath(path, namespaces=NS)]


def text(node: Any, path: str) -> str:
    """The single value at `path`; fails when there is none or several."""
    values = texts(node, path)
    assert len(values) == 1, f"{path}: {values}"
    return values[0]


def line_item(root: Any, line_number: int) -> Any:
    found = root.xpath(f"cac:OrderLine/cac:LineItem[cbc:ID='{line_number}']", namespaces=NS)
    assert len(found) == 1
    return found[0]


# ---------------------------------------------------------------- Order


def test_order_carries_header_parties_and_every_line() -> None:
    root = render_valid(make_doc(notes="Deliver to the side gate.", payload_id="po-7f3a"))

    assert text(root, "cbc:UBLVersionID/text()") == "2.1"
    assert text(root, "cbc:ID/text()") == "1042-AGRIEST"
    assert text(root, "cbc:UUID/text()") == "po-7f3a"
    assert text(root, "cbc:IssueDate/text()") == "2026-11-20"
    assert text(root, "cbc:IssueTime/text()") == "14:15:03Z"
    assert text(root, "cbc:Note/text()") == "Deliver to the side gate."
    assert text(root, "cbc:DocumentCurrencyCode/text()") == "USD"
    assert text(root, "cbc:CustomerReference/text()") == "#1042"
    buyer = "cac:BuyerCustomerParty/cac:Party"
    supplier = "cac:SellerSupplierParty/cac:Party"
    assert text(root, f"{buyer}/cac:PartyIdentification/cbc:ID/text()") == "garden-goods"
    assert text(root, f"{buyer}/cac:PartyName/cbc:Name/text()") == "Garden Goods Co."
    assert text(root, f"{supplier}/cac:PartyIdentification/cbc:ID/text()") == "agriest"
    assert text(root, f"{supplier}/cac:PartyName/cbc:Name/text()") == "Agriest Supply Inc."

    assert texts(root, "cac:OrderLine/cac:LineItem/cbc:ID/text()") == ["1", "2", "3"]
    expected = {  # line: quantity, SKU, supplier SKU, unit price, line amount
        1: ("3", "GG-SEED-TOM", "AG-10077", "4.25", "12.75"),
        2: ("1", "GG-TROWEL", "AG-20410", "12.90", "12.90"),
        3: ("2", "GG-GLOVES-M", "AG-31002", "7.5", "15.0"),
    }
    for number, (quantity, sku, supplier_sku, price, amount) in expected.items():
        item = line_item(root, number)
        assert text(item, "cbc:Quantity/text()") == quantity
        assert text(item, "cbc:Quantity/@unitCode") == "C62"
        assert text(item, "cac:Item/cac:BuyersItemIdentification/cbc:ID/text()") == sku
        assert text(item, "cac:Item/cac:SellersItemIdentification/cbc:ID/text()") == supplier_sku
        assert text(item, "cac:Price/cbc:PriceAmount/text()") == price
        assert text(item, "cbc:LineExtensionAmount/text()") == amount
        assert not texts(item, "cbc:LineStatusCode")
    assert text(line_item(root, 2), "cac:Item/cbc:Name/text()") == "Stainless hand trowel"


def test_order_ships_to_the_address_and_names_who_receives_it() -> None:
    root = render_valid(make_doc())

    address = "cac:Delivery/cac:DeliveryLocation/cac:Address"
    assert text(root, f"{address}/cbc:StreetName/text()") == "1200 Alder Street"
    assert text(root, f"{address}/cbc:AdditionalStreetName/text()") == "Unit 4"
    assert text(root, f"{address}/cbc:CityName/text()") == "Portland"
    assert text(root, f"{address}/cbc:PostalZone/text()") == "97205"
    assert text(root, f"{address}/cbc:CountrySubentity/text()") == "Oregon"
    assert text(root, f"{address}/cbc:CountrySubentityCode/text()") == "OR"
    assert text(root, f"{address}/cac:Country/cbc:IdentificationCode/text()") == "US"
    assert text(root, f"{address}/cac:Country/cbc:Name/text()") == "United States"
    party = "cac:Delivery/cac:DeliveryParty"
    assert text(root, f"{party}/cac:PartyName/cbc:Name/text()") == "Whitfield Landscaping"
    assert text(root, f"{party}/cac:Contact/cbc:Name/text()") == "Dana Whitfield"
    # The address's own phone is the carrier's first choice; the e-mail is the customer's.
    assert text(root, f"{party}/cac:Contact/cbc:Telephone/text()") == "+1 503 555 0142"
    assert text(root, f"{party}/cac:Contact/cbc:ElectronicMail/text()") == "dana@example.com"


def test_recipient_without_company_or_phone_falls_back_to_the_customer() -> None:
    ship_to = dataclasses.replace(SHIP_TO, company=None, phone=None, address2=None)
    root = render_valid(make_doc(ship_to=ship_to))

    party = "cac:Delivery/cac:DeliveryParty"
    assert text(root, f"{party}/cac:PartyName/cbc:Name/text()") == "Dana Whitfield"
    assert text(root, f"{party}/cac:Contact/cbc:Telephone/text()") == "+1 503 555 0199"
    assert not texts(root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cbc:AdditionalStreetName")


def test_address_with_no_one_to_name_has_no_delivery_party() -> None:
    ship_to = PostalAddress(city="Lyon", postal_code="69002", country_code="FR")
    root = render_valid(make_doc(ship_to=ship_to, contact=None))

    assert text(root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cbc:CityName/text()") == "Lyon"
    assert not texts(root, "cac:Delivery/cac:DeliveryParty")


@pytest.mark.parametrize("action", ["new", "change"])
def test_order_without_ship_to_has_no_delivery(action: Action) -> None:
    root = render_valid(make_doc(action=action, version=2, ship_to=None, contact=None))

    assert not texts(root, "cac:Delivery")
    assert len(root.xpath("cac:OrderLine", namespaces=NS)) == 3


@pytest.mark.parametrize(
    ("currency", "unit_prices", "expected_prices", "expected_amounts"),
    [
        ("USD", ["19.99", "0.10", "5"], ["19.99", "0.10", "5"], ["59.97", "0.10", "10"]),
        ("EUR", ["7.50", "12.00", "0.99"], ["7.50", "12.00", "0.99"], ["22.50", "12.00", "1.98"]),
        ("JPY", ["1500", "880", "12000"], ["1500", "880", "12000"], ["4500", "880", "24000"]),
    ],
)
def test_amounts_are_exact_in_the_order_currency(
    currency: str, unit_prices: list[str], expected_prices: list[str], expected_amounts: list[str]
) -> None:
    lines = tuple(
        dataclasses.replace(line, unit_price=Decimal(price), quantity=quantity)
        for line, price, quantity in zip(LINES, unit_prices, [3, 1, 2], strict=True)
    )
    root = render_valid(make_doc(currency=currency, lines=lines))

    assert text(root, "cbc:DocumentCurrencyCode/text()") == currency
    items = "cac:OrderLine/cac:LineItem"
    assert texts(root, f"{items}/cac:Price/cbc:PriceAmount/text()") == expected_prices
    assert texts(root, f"{items}/cbc:LineExtensionAmount/text()") == expected_amounts
    assert set(texts(root, "//@currencyID")) == {currency}
    assert len(texts(root, "//@currencyID")) == 6


def test_amounts_never_use_exponent_notation() -> None:
    line = dataclasses.replace(LINES[0], unit_price=Decimal("1E+3"), quantity=2)
    root = render_valid(make_doc(currency="JPY", lines=(line,)))

    assert text(root, "//cbc:PriceAmount/text()") == "1000"
    assert text(root, "//cbc:LineExtensionAmount/text()") == "2000"


def test_lines_without_supplier_sku_or_price_leave_those_elements_out() -> None:
    lines = (
        PoLine(1, "GG-SEED-TOM", None, "Tomato seeds", 3, Decimal("4.25")),
        PoLine(2, "GG-TROWEL", "AG-20410", "Hand trowel", 1, None),
        PoLine(3, None, None, "Unmapped item", 5, None),
    )
    root = render_valid(make_doc(lines=lines))

    first, second, third = (line_item(root, n) for n in (1, 2, 3))
    assert text(first, "cac:Item/cac:BuyersItemIdentification/cbc:ID/text()") == "GG-SEED-TOM"
    assert not texts(first, "cac:Item/cac:SellersItemIdentification")
    assert text(first, "cac:Price/cbc:PriceAmount/text()") == "4.25"
    assert text(second, "cac:Item/cac:SellersItemIdentification/cbc:ID/text()") == "AG-20410"
    assert not texts(second, "cac:Price") and not texts(second, "cbc:LineExtensionAmount")
    assert text(third, "cac:Item/cbc:Name/text()") == "Unmapped item"
    assert text(third, "cbc:Quantity/text()") == "5"
    assert not texts(third, "cac:Item/cac:BuyersItemIdentification")
    assert not texts(third, "cac:Item/cac:SellersItemIdentification")
    assert not texts(third, "cac:Price")


UNICODE_SHIP_TO = PostalAddress(
    name="山田 太郎",
    company="株式会社グリーン",
    address1="渋谷区神南1-2-3",
    address2="グリーンビル 5階",
    city="東京都",
    region="東京都",
    region_code="13",
    postal_code="150-0041",
    country_code="JP",
    country="日本",
    phone="+81 3-1234-5678",
)


@pytest.mark.parametrize("action", ["new", "change", "cancel"])
def test_unicode_names_and_addresses_survive(action: Action) -> None:
    doc = make_doc(
        action=action,
        version=1 if action == "new" else 2,
        currency="JPY",
        buyer=Party(id="gärtnerei-müller", name="Gärtnerei Müller & Söhne 🌻"),
        supplier=Party(id="grün", name="Grüne Straße GmbH"),
        ship_to=UNICODE_SHIP_TO,
        contact=Contact(name="山田 太郎", email="taro@example.jp"),
        lines=(PoLine(1, "種-001", "ÄÖÜ-ß", "トマトの種 🍅", 2, Decimal("880")),),
        notes="置き配 OK — danke schön",
    )
    xml = render_ubl(doc)
    root = render_valid(doc)

    assert "Gärtnerei Müller & Söhne 🌻".encode() in xml.replace(b"&amp;", b"&")
    assert "置き配".encode() in xml  # written as UTF-8, not as character references
    assert b"&#" not in xml
    buyer_name = "cac:BuyerCustomerParty/cac:Party/cac:PartyName/cbc:Name/text()"
    assert text(root, buyer_name) == "Gärtnerei Müller & Söhne 🌻"
    supplier_name = "cac:SellerSupplierParty/cac:Party/cac:PartyName/cbc:Name/text()"
    assert text(root, supplier_name) == "Grüne Straße GmbH"
    if action == "cancel":
        assert text(root, "cbc:CancellationNote/text()") == "置き配 OK — danke schön"
        return
    assert text(root, "cbc:Note/text()") == "置き配 OK — danke schön"
    address = "cac:Delivery/cac:DeliveryLocation/cac:Address"
    assert text(root, f"{address}/cbc:StreetName/text()") == "渋谷区神南1-2-3"
    assert text(root, f"{address}/cbc:CityName/text()") == "東京都"
    assert text(root, f"{address}/cac:Country/cbc:IdentificationCode/text()") == "JP"
    party = "cac:Delivery/cac:DeliveryParty"
    assert text(root, f"{party}/cac:PartyName/cbc:Name/text()") == "株式会社グリーン"
    assert text(root, f"{party}/cac:Contact/cbc:Name/text()") == "山田 太郎"
    item = line_item(root, 1)
    assert text(item, "cac:Item/cbc:Name/text()") == "トマトの種 🍅"
    assert text(item, "cac:Item/cac:BuyersItemIdentification/cbc:ID/text()") == "種-001"
    assert text(item, "cac:Item/cac:SellersItemIdentification/cbc:ID/text()") == "ÄÖÜ-ß"


def test_issue_date_and_time_are_written_in_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    root = render_valid(make_doc(issued_at=datetime(2026, 11, 21, 8, 30, 0, 250_000, tokyo)))

    assert text(root, "cbc:IssueDate/text()") == "2026-11-20"
    assert text(root, "cbc:IssueTime/text()") == "23:30:00Z"


def test_issue_time_without_time_zone_is_refused() -> None:
    with pytest.raises(DocumentInvalid, match="no time zone"):
        render_ubl(make_doc(issued_at=datetime(2026, 11, 20, 14, 15, 3)))


def test_text_xml_cannot_carry_is_refused_when_rendering() -> None:
    lines = (dataclasses.replace(LINES[0], title="Seeds\x00"),)

    with pytest.raises(DocumentInvalid) as caught:
        render_ubl(make_doc(lines=lines))
    assert caught.value.format == "ubl"
    assert "Name" in caught.value.reason


# ---------------------------------------------------------------- OrderChange


def test_change_refers_to_the_original_order_and_carries_its_version() -> None:
    root = render_valid(make_doc(action="change", version=3, notes="Customer changed sizes."))

    assert text(root, "cbc:ID/text()") == "1042-AGRIEST-v3"
    assert text(root, "cbc:SequenceNumberID/text()") == "3"
    assert text(root, "cbc:IssueDate/text()") == "2026-11-20"
    assert text(root, "cbc:Note/text()") == "Customer changed sizes."
    assert text(root, "cbc:DocumentCurrencyCode/text()") == "USD"
    assert text(root, "cac:OrderReference/cbc:ID/text()") == "1042-AGRIEST"
    assert text(root, "cac:OrderReference/cbc:CustomerReference/text()") == "#1042"
    assert text(root, "cbc:CustomerReference/text()") == "#1042"
    assert text(root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cbc:CityName/text()") == (
        "Portland"
    )
    assert texts(root, "cac:OrderLine/cac:LineItem/cbc:ID/text()") == ["1", "2", "3"]


def test_change_sends_a_removed_line_with_quantity_zero_marked_cancelled() -> None:
    lines = (LINES[0], dataclasses.replace(LINES[1], quantity=0), LINES[2])
    root = render_valid(make_doc(action="change", version=2, lines=lines))

    removed = line_item(root, 2)
    assert text(removed, "cbc:LineStatusCode/text()") == "Cancelled"
    assert text(removed, "cbc:Quantity/text()") == "0"
    assert text(removed, "cbc:LineExtensionAmount/text()") == "0.00"
    assert text(removed, "cac:Item/cac:SellersItemIdentification/cbc:ID/text()") == "AG-20410"
    for kept in (line_item(root, 1), line_item(root, 3)):
        assert not texts(kept, "cbc:LineStatusCode")
    assert text(line_item(root, 3), "cbc:Quantity/text()") == "2"


def test_versions_of_one_po_are_distinct_documents() -> None:
    ids = {
        text(render_valid(make_doc(action=action, version=version)), "cbc:ID/text()")
        for action, version in [("new", 1), ("change", 2), ("change", 3), ("cancel", 4)]
    }
    assert ids == {"1042-AGRIEST", "1042-AGRIEST-v2", "1042-AGRIEST-v3", "1042-AGRIEST-v4"}


# ---------------------------------------------------------------- OrderCancellation


def test_cancellation_names_the_order_and_why() -> None:
    root = render_valid(make_doc(action="cancel", version=2, notes="Customer cancelled."))

    assert text(root, "cbc:ID/text()") == "1042-AGRIEST-v2"
    assert text(root, "cbc:IssueDate/text()") == "2026-11-20"
    assert text(root, "cbc:CancellationNote/text()") == "Customer cancelled."
    assert text(root, "cac:OrderReference/cbc:ID/text()") == "1042-AGRIEST"
    assert text(root, "cac:OrderReference/cbc:CustomerReference/text()") == "#1042"
    seller = "cac:SellerSupplierParty/cac:Party/cac:PartyIdentification/cbc:ID/text()"
    assert text(root, seller) == "agriest"
    assert not texts(root, "cac:OrderLine") and not texts(root, "cac:Delivery")


def test_cancellation_without_notes_still_has_its_required_note() -> None:
    root = render_valid(make_doc(action="cancel", version=2, notes=None))

    assert text(root, "cbc:CancellationNote/text()").strip()


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("action", ["new", "change", "cancel"])
def test_rendering_twice_gives_identical_bytes(action: Action) -> None:
    doc = make_doc(action=action, version=2, notes="Same every time.")
    twin = dataclasses.replace(doc, lines=tuple(dataclasses.replace(ln) for ln in doc.lines))

    first = render_ubl(doc)
    assert render_ubl(doc) == first
    assert render_ubl(twin) == first
    assert first.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n")


# ---------------------------------------------------------------- validate_ubl


def _without_order_lines(root: Any) -> None:
    for order_line in root.findall("cac:OrderLine", NS):
        root.remove(order_line)


def _id_after_issue_date(root: Any) -> None:
    root.find("cbc:IssueDate", NS).addnext(root.find("cbc:ID", NS))


def _price_without_currency(root: Any) -> None:
    del root.find(".//cbc:PriceAmount", NS).attrib["currencyID"]


def _quantity_in_words(root: Any) -> None:
    root.find(".//cbc:Quantity", NS).text = "three"


def _unknown_element(root: Any) -> None:
    root.find("cbc:IssueDate", NS).addnext(etree.Element(f"{{{CBC}}}ShipByDate"))


@pytest.mark.parametrize(
    ("break_it", "expected", "on_line_with"),
    [
        # libxml2 lists only the first ten expected elements, so OrderLine is not among them.
        (_without_order_lines, "Element 'Order': Missing child element(s)", "<Order "),
        (_id_after_issue_date, "Element 'cbc:IssueDate': This element is not expected",
         "<cbc:IssueDate>"),
        (_price_without_currency, "The attribute 'currencyID' is required but missing",
         "<cbc:PriceAmount>"),
        (_quantity_in_words, "'three' is not a valid value", ">three<"),
        (_unknown_element, "Element 'cbc:ShipByDate': This element is not expected",
         "ShipByDate"),
    ],
    ids=["no-order-line", "out-of-order", "no-currency", "bad-quantity", "unknown-element"],
)
def test_broken_order_is_rejected_with_the_first_error_and_its_line(
    break_it: Callable[[Any], None], expected: str, on_line_with: str
) -> None:
    root = etree.fromstring(render_ubl(make_doc()))
    break_it(root)
    broken = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    line = next(
        number
        for number, content in enumerate(broken.decode().splitlines(), start=1)
        if on_line_with in content
    )

    with pytest.raises(DocumentInvalid) as caught:
        validate_ubl(broken)
    assert caught.value.format == "ubl"
    assert caught.value.reason.startswith(f"line {line}: ")
    assert expected in caught.value.reason


def test_change_without_sequence_number_is_rejected() -> None:
    root = etree.fromstring(render_ubl(make_doc(action="change", version=2)))
    root.remove(root.find("cbc:SequenceNumberID", NS))

    with pytest.raises(DocumentInvalid, match="SequenceNumberID"):
        validate_ubl(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_cancellation_without_order_reference_is_rejected() -> None:
    root = etree.fromstring(render_ubl(make_doc(action="cancel", version=2)))
    root.remove(root.find("cac:OrderReference", NS))

    with pytest.raises(DocumentInvalid, match="OrderReference"):
        validate_ubl(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (b"<Order xmlns='urn:oasis:names:specification:ubl:schema:xsd:Order-2'>", "well-formed"),
        (b"", "well-formed"),
        (b"<cXML payloadID='x'/>", "not a UBL Order"),
        (b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>",
         "not a UBL Order"),
        (b"<?xml version='1.0'?>\n<!DOCTYPE Order [<!ENTITY x SYSTEM 'file:///etc/hostname'>]>\n"
         b"<Order xmlns='urn:oasis:names:specification:ubl:schema:xsd:Order-2'>&x;</Order>",
         "DOCTYPE"),
    ],
    ids=["truncated", "empty", "cxml", "invoice", "doctype-entity"],
)
def test_what_is_not_a_ubl_order_document_is_rejected(xml: bytes, expected: str) -> None:
    with pytest.raises(DocumentInvalid, match=expected):
        validate_ubl(xml)


def test_threads_sharing_the_schema_each_get_their_own_verdict() -> None:
    _schema.cache_clear()  # so that the threads also race to load it
    valid = render_ubl(make_doc())
    root = etree.fromstring(valid)
    _quantity_in_words(root)
    broken = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def verdict(xml: bytes) -> str:
        try:
            validate_ubl(xml)
        except DocumentInvalid as exc:
            return exc.reason
        return "valid"

    documents = [valid, broken] * 40
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(verdict, documents))
    assert verdicts[0::2] == ["valid"] * 40
    assert all("'three' is not a valid value" in reason for reason in verdicts[1::2])


# ---------------------------------------------------------------- golden files


def golden_doc(action: Action) -> PurchaseOrderDoc:
    """A fixed PO with all a supplier reads: v1 new, v2 change (line 2 removed), v3 cancel."""
    lines = LINES + (PoLine(4, "GG-LABELS", None, "Plant labels „Grün“ 🌱", 10, None),)
    if action == "change":
        lines = (lines[0], dataclasses.replace(lines[1], quantity=0), *lines[2:])
    version = {"new": 1, "change": 2, "cancel": 3}[action]
    return make_doc(
        action=action,
        version=version,
        issued_at=utc(2026, 11, 20, 14, 15, 3 + version),
        notes={"new": None, "change": "Trowel no longer wanted.", "cancel": "Customer cancelled."}[
            action
        ],
        payload_id=f"1042-AGRIEST-v{version}@orderhub",
        lines=lines,
    )


def assert_matches_golden(name: str, actual: bytes) -> None:
    """Compare `actual` with the golden file byte for byte; UPDATE_GOLDEN=1 rewrites it first."""
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
    assert path.is_file(), f"{path} is missing; write it with UPDATE_GOLDEN=1 (module docstring)"
    expected = path.read_bytes()
    if actual != expected:
        hint = f"rendered bytes differ from {path}; if intended, regenerate with UPDATE_GOLDEN=1"
        assert actual.decode("utf-8").splitlines() == expected.decode("utf-8").splitlines(), hint
        assert actual == expected, hint  # same lines, different line endings or final newline


@pytest.mark.parametrize("action", ["new", "change", "cancel"])
def test_golden_file(action: Action) -> None:
    xml = render_ubl(golden_doc(action))

    validate_ubl(xml)
    assert_matches_golden(GOLDEN_FILES[action], xml)
