"""Suppliers' purchase-order acknowledgements: what OrderHub reads from a cXML
ConfirmationRequest, a UBL 2.1 OrderResponse or OrderResponseSimple and its own
PurchaseOrderAcknowledgement, and that broken or hostile files are refused with a reason.

Fixtures in `tests/fixtures/acks/` are shaped like the documented examples: the cXML User's
Guide ConfirmationRequest, the OASIS UBL 2.1 example instance `UBL-OrderResponse-2.1-Example.xml`
(no response code, a disputed line), a Peppol BIS order response, and FORMATS.md's example.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from app.documents.acks import (
    MAX_ACK_BYTES,
    AckInvalid,
    Acknowledgement,
    parse_acknowledgement,
)
from app.errors import OrderHubError
from tests.unit.helpers import utc

FIXTURES = Path(__file__).parent.parent / "fixtures" / "acks"
FORMATS_MD = Path(__file__).parents[2] / "app" / "documents" / "FORMATS.md"
CXML_DOCTYPE = '<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.050/Fulfill.dtd">'


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def only(data: bytes) -> Acknowledgement:
    acks = parse_acknowledgement(data)
    assert len(acks) == 1, acks
    return acks[0]


def refused(data: bytes) -> AckInvalid:
    with pytest.raises(AckInvalid) as caught:
        parse_acknowledgement(data)
    return caught.value


# ---------------------------------------------------------------- cXML ConfirmationRequest


def test_cxml_accept_confirms_the_version_we_sent() -> None:
    assert only(fixture("cxml_confirmation_accept.xml")) == Acknowledgement(
        po_number="shopify-1042-agriest",
        version=1,
        payload_id="shopify-1042-agriest.v1@orderhub",
        status="accepted",
        supplier_reference="AE-C-55120",
        note="Thank you for your order. It ships within two working days.",
        issued_at=utc(2026, 11, 20, 14, 22, 11),  # noticeDate was 15:22:11+01:00
        format="cxml",
    )


def test_cxml_detail_with_a_backordered_line_is_a_change() -> None:
    ack = only(fixture("cxml_confirmation_detail.xml"))

    assert ack.status == "changed"
    assert (ack.po_number, ack.version) == ("shopify-1042-agriest", 2)
    # The supplier's order number (Extrinsic) is preferred to the confirmation's id.
    assert ack.supplier_reference == "SO-2026-88123"
    assert ack.note == "Line 3 is backordered; we ship it separately."
    assert ack.issued_at == utc(2026, 11, 21, 17, 14, 2)  # 09:14:02-08:00


def test_cxml_reject_carries_the_suppliers_reason() -> None:
    ack = only(fixture("cxml_confirmation_reject.xml"))

    assert ack.status == "rejected"
    assert ack.note == "We no longer deliver to Germany."
    assert ack.supplier_reference is None


def _cxml(header_type: str = "accept", items: tuple[str, ...] = (), *,
          header_attributes: str = "", reference: str | None = None) -> bytes:
    """The accepting fixture with another header type, items and order reference."""
    xml = fixture("cxml_confirmation_accept.xml").decode()
    xml = xml.replace('type="accept"', f'type="{header_type}" {header_attributes}', 1)
    if reference is not None:
        xml = re.sub(r"<OrderReference .*</OrderReference>", reference, xml, flags=re.S)
    lines = "".join(
        f'<ConfirmationItem quantity="1" lineNumber="{number}"><UnitOfMeasure>EA</UnitOfMeasure>'
        f'<ConfirmationStatus quantity="1" type="{item}"><UnitOfMeasure>EA</UnitOfMeasure>'
        "</ConfirmationStatus></ConfirmationItem>"
        for number, item in enumerate(items, start=1)
    )
    return xml.replace("</ConfirmationRequest>", lines + "</ConfirmationRequest>").encode()


@pytest.mark.parametrize(
    ("header_type", "items", "expected"),
    [
        ("accept", (), "accepted"),
        ("accept", ("accept", "accept"), "accepted"),
        ("accept", ("accept", "reject"), "changed"),   # some lines refused
        ("allDetail", ("accept", "accept"), "accepted"),
        ("allDetail", ("accept", "detail"), "changed"),  # a line re-dated or re-priced
        ("allDetail", ("reject", "reject"), "rejected"),
        ("detail", ("reject",), "changed"),  # lines not listed are not refused
        ("detail", (), "accepted"),
        ("except", ("accept",), "changed"),
        ("backordered", (), "changed"),
        ("requestToPay", (), "changed"),
        ("reject", ("accept",), "rejected"),  # the header rejects the whole order
    ],
)
def test_cxml_status_follows_the_header_type_and_its_items(
    header_type: str, items: tuple[str, ...], expected: str
) -> None:
    assert only(_cxml(header_type, items)).status == expected


def test_cxml_unknown_confirmation_type_is_refused() -> None:
    error = refused(_cxml("maybe"))
    assert error.format == "cxml"
    assert "ConfirmationHeader/@type 'maybe'" in error.reason
    assert "line 24" in error.reason


def test_cxml_unknown_item_status_is_refused() -> None:
    assert "ConfirmationStatus/@type 'perhaps'" in refused(_cxml("detail", ("perhaps",))).reason


def test_cxml_withdrawing_a_confirmation_is_not_supported() -> None:
    xml = _cxml().replace(b'operation="new"', b'operation="delete"')
    assert "@operation 'delete'" in refused(xml).reason


def test_cxml_update_of_a_confirmation_is_read_like_a_new_one() -> None:
    xml = _cxml("reject").replace(b'operation="new"', b'operation="update"')
    assert only(xml).status == "rejected"


def test_cxml_without_our_payload_id_names_the_po_but_no_version() -> None:
    # Real files often send an empty payloadID.
    reference = ('<OrderReference orderID="shopify-1042-agriest"><DocumentReference payloadID=""/>'
                 "</OrderReference>")
    ack = only(_cxml(reference=reference))
    assert (ack.po_number, ack.version, ack.payload_id) == ("shopify-1042-agriest", None, None)


def test_cxml_po_number_comes_from_our_payload_id_when_order_id_is_missing() -> None:
    reference = ('<OrderReference><DocumentReference payloadID="shopify-7-agriest.v3@orderhub"/>'
                 "</OrderReference>")
    ack = only(_cxml(reference=reference))
    assert (ack.po_number, ack.version) == ("shopify-7-agriest", 3)


def test_cxml_order_id_contradicting_our_payload_id_is_refused() -> None:
    reference = ('<OrderReference orderID="shopify-1042-agriest">'
                 '<DocumentReference payloadID="shopify-9-agriest.v1@orderhub"/></OrderReference>')
    error = refused(_cxml(reference=reference))
    assert "names PO 'shopify-1042-agriest'" in error.reason
    assert "of PO 'shopify-9-agriest'" in error.reason


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("", "ConfirmationRequest (line 23) has no OrderReference"),
        ('<OrderReference orderID="shopify-1042-agriest"/>', "has no DocumentReference"),
        ('<OrderReference><DocumentReference payloadID="foreign-77"/></OrderReference>',
         "names no PO number"),
    ],
    ids=["no-order-reference", "no-document-reference", "no-po-number"],
)
def test_cxml_without_an_order_reference_is_refused(reference: str, expected: str) -> None:
    assert expected in refused(_cxml(reference=reference)).reason


def test_cxml_missing_notice_date_is_refused() -> None:
    xml = re.sub(rb'noticeDate="[^"]*"', b"", _cxml())
    assert "ConfirmationHeader/@noticeDate is missing" in refused(xml).reason


def test_cxml_notice_date_without_time_zone_gives_no_time() -> None:
    xml = _cxml().replace(b'noticeDate="2026-11-20T15:22:11+01:00"',
                          b'noticeDate="2026-11-20T15:22:11"')
    assert only(xml).issued_at is None


def test_cxml_notice_date_that_is_not_a_date_is_refused() -> None:
    xml = _cxml().replace(b'noticeDate="2026-11-20T15:22:11+01:00"', b'noticeDate="Friday"')
    assert "@noticeDate (line 24) 'Friday' is not an ISO 8601" in refused(xml).reason


def test_cxml_other_requests_are_not_confirmations() -> None:
    xml = _cxml().replace(b"ConfirmationRequest>", b"ShipNoticeRequest>")
    assert "cXML/Request holds ShipNoticeRequest" in refused(xml).reason


def test_cxml_without_doctype_is_read_too() -> None:
    xml = _cxml().replace(CXML_DOCTYPE.encode(), b"")
    assert only(xml).status == "accepted"


def test_cxml_doctype_naming_another_dtd_is_refused() -> None:
    xml = _cxml().replace(CXML_DOCTYPE.encode(), b'<!DOCTYPE cXML SYSTEM "file:///etc/passwd">')
    assert "unexpected DOCTYPE SYSTEM identifier 'file:///etc/passwd'" in refused(xml).reason


# ---------------------------------------------------------------- UBL OrderResponse


def test_ubl_response_like_the_oasis_example_is_a_change_because_of_its_disputed_line() -> None:
    assert only(fixture("ubl_order_response_lines.xml")) == Acknowledgement(
        po_number="shopify-1042-agriest",
        version=None,
        payload_id=None,
        status="changed",
        supplier_reference="AE-OR-3381",  # the response's own id: no SalesOrderID
        note="Line 2: the 14-tine rake is discontinued; we offer the 16-tine model at the same "
             "price.",
        issued_at=None,  # IssueTime 09:30:00 names no time zone
        format="ubl",
    )


def test_ubl_accepted_response_reads_our_payload_id_back() -> None:
    assert only(fixture("ubl_order_response_accepted.xml")) == Acknowledgement(
        po_number="shopify-1042-agriest",
        version=1,
        payload_id="shopify-1042-agriest.v1@orderhub",
        status="accepted",
        supplier_reference="SO-2026-88123",
        note="Ships within two working days.",
        issued_at=utc(2026, 11, 20, 14, 22, 11),  # 15:22:11+01:00
        format="ubl",
    )


def _ubl(code: str | None = "AP") -> bytes:
    xml = fixture("ubl_order_response_accepted.xml").decode()
    element = '<cbc:OrderResponseCode listID="UNCL4343OpSubset">AP</cbc:OrderResponseCode>'
    return xml.replace(element, "" if code is None else element.replace("AP", code)).encode()


@pytest.mark.parametrize(
    ("code", "expected"),
    [("AP", "accepted"), ("AD", "accepted"), ("RE", "rejected"), ("CA", "changed"),
     ("AC", "changed"), (None, "accepted")],
)
def test_ubl_status_follows_the_response_code(code: str | None, expected: str) -> None:
    assert only(_ubl(code)).status == expected


@pytest.mark.parametrize("code", ["AB", "AJ"])
def test_ubl_receipt_without_a_decision_gives_no_acknowledgement(code: str) -> None:
    assert parse_acknowledgement(_ubl(code)) == []


def test_ubl_unknown_response_code_is_refused() -> None:
    error = refused(_ubl("OK"))
    assert error.format == "ubl"
    assert "cbc:OrderResponseCode 'OK' (line 10)" in error.reason


@pytest.mark.parametrize("line_status", ["NoStatus", "5"])
def test_ubl_lines_without_changes_leave_a_response_without_code_accepted(
    line_status: str
) -> None:
    xml = fixture("ubl_order_response_lines.xml").replace(b">Disputed<",
                                                          f">{line_status}<".encode())
    assert only(xml).status == "accepted"


def test_ubl_response_invalid_against_the_schema_says_what_and_where() -> None:
    xml = _ubl().replace(b"<cbc:IssueDate>2026-11-20<", b"<cbc:IssueDate>20/11/2026<")
    error = refused(xml)
    assert error.reason == (
        "line 8: Element 'cbc:IssueDate': '20/11/2026' is not a valid value of the atomic type "
        "'xs:date'."
    )


def test_ubl_response_without_seller_is_refused_by_the_schema() -> None:
    xml = re.sub(rb"<cac:SellerSupplierParty>.*</cac:SellerSupplierParty>", b"", _ubl(),
                 flags=re.S)
    assert "Element 'cac:BuyerCustomerParty': This element is not expected" in refused(xml).reason


def test_ubl_response_without_order_reference_is_refused() -> None:
    xml = re.sub(rb"<cac:OrderReference>.*</cac:OrderReference>", b"", _ubl(), flags=re.S)
    assert "OrderResponse (line 3) has no cac:OrderReference" in refused(xml).reason


def test_ubl_response_to_several_orders_gives_one_acknowledgement_each() -> None:
    second = (b"<cac:OrderReference><cbc:ID>shopify-1043-agriest</cbc:ID>"
              b"<cbc:UUID>shopify-1043-agriest.v2@orderhub</cbc:UUID></cac:OrderReference>")
    xml = _ubl().replace(b"<cac:SellerSupplierParty>", second + b"<cac:SellerSupplierParty>")

    acks = parse_acknowledgement(xml)
    assert [(a.po_number, a.version, a.status) for a in acks] == [
        ("shopify-1042-agriest", 1, "accepted"), ("shopify-1043-agriest", 2, "accepted")]


def test_ubl_response_quoting_our_order_change_id_names_the_po() -> None:
    xml = _ubl().replace(b"<cbc:ID>shopify-1042-agriest</cbc:ID>",
                         b"<cbc:ID>shopify-1042-agriest-v2</cbc:ID>")
    xml = xml.replace(b".v1@orderhub", b".v2@orderhub")
    ack = only(xml)
    assert (ack.po_number, ack.version) == ("shopify-1042-agriest", 2)


def test_ubl_response_whose_order_id_contradicts_our_payload_id_is_refused() -> None:
    xml = _ubl().replace(b"<cbc:ID>shopify-1042-agriest</cbc:ID>",
                         b"<cbc:ID>shopify-1043-agriest</cbc:ID>")
    assert "names PO 'shopify-1043-agriest'" in refused(xml).reason


# ---------------------------------------------------------------- UBL OrderResponseSimple


def test_ubl_simple_response_rejecting_an_order() -> None:
    assert only(fixture("ubl_order_response_simple_rejected.xml")) == Acknowledgement(
        po_number="shopify-1042-agriest",  # quoted as our cancellation's id "...-v3"
        version=3,
        payload_id="shopify-1042-agriest.v3@orderhub",
        status="rejected",
        supplier_reference="AE-ORS-0907",
        note="The order was cancelled before we could ship it.",
        issued_at=utc(2026, 11, 22, 8, 5),
        format="ubl",
    )


def test_ubl_simple_response_accepting_an_order() -> None:
    xml = fixture("ubl_order_response_simple_rejected.xml").replace(
        b">false<", b">true<")
    assert only(xml).status == "accepted"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (b"<cbc:AcceptedIndicator>false</cbc:AcceptedIndicator>", b"",
         "OrderResponseSimple (line 2) has no cbc:AcceptedIndicator"),
        (b">false<", b">no<", "cbc:AcceptedIndicator 'no' is not true or false"),
        (b"<cbc:IssueDate>2026-11-22</cbc:IssueDate>", b"", "has no cbc:IssueDate"),
        (b"<cbc:IssueDate>2026-11-22<", b"<cbc:IssueDate>22.11.2026<",
         "'22.11.2026T08:05:00Z' is not an ISO 8601"),
    ],
    ids=["no-indicator", "bad-indicator", "no-issue-date", "bad-issue-date"],
)
def test_ubl_simple_response_missing_what_ubl_requires_is_refused(
    old: bytes, new: bytes, expected: str
) -> None:
    xml = fixture("ubl_order_response_simple_rejected.xml").replace(old, new)
    assert expected in refused(xml).reason


# ---------------------------------------------------------------- OrderHub's own format


def test_native_file_may_acknowledge_several_purchase_orders() -> None:
    assert parse_acknowledgement(fixture("orderhub_ack.xml")) == [
        Acknowledgement(
            po_number="shopify-1042-agriest",
            version=2,
            payload_id=None,
            status="changed",
            supplier_reference="SO-2026-88123",
            note="Line 3 (garden hose) is backordered until 14 December; the rest ships on "
                 "Monday.",
            issued_at=utc(2026, 11, 21, 9, 14, 2),
            format="orderhub",
        ),
        Acknowledgement("shopify-1043-agriest", 1, None, "accepted", None, None, None,
                        "orderhub"),
    ]


def test_native_example_in_formats_md_is_valid() -> None:
    section = FORMATS_MD.read_text().split("## OrderHub purchase-order acknowledgement", 1)[1]
    example = re.search(r"```xml\n(.*?)```", section, flags=re.S)
    assert example is not None
    acks = parse_acknowledgement(example.group(1).encode())
    assert [(a.po_number, a.version, a.status) for a in acks] == [
        ("shopify-1042-agriest", 2, "changed"), ("shopify-1042-agriest", 3, "rejected")]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (b"<Status>changed</Status>", b"<Status>ok</Status>",
         "line 6: Element 'Status': [facet 'enumeration'] The value 'ok' is not an element of "
         "the set {'accepted', 'rejected', 'changed'}."),
        (b"<PoNumber>shopify-1042-agriest</PoNumber>", b"<PoNumber>  </PoNumber>",
         "line 4: Element 'PoNumber': [facet 'pattern'] The value '  ' is not accepted"),
        (b"<Version>2</Version>", b"<Version>0</Version>", "line 5: Element 'Version': '0'"),
        (b"<Version>2</Version>", b"", "line 6: Element 'Status': This element is not expected. "
                                       "Expected is ( Version )."),
        (b"2026-11-21T09:14:02Z", b"2026-11-21T10:14:02+01:00",
         "line 8: Element 'IssuedAt': [facet 'pattern']"),
    ],
    ids=["bad-status", "blank-po-number", "version-zero", "no-version", "not-utc"],
)
def test_native_file_invalid_against_its_schema_says_what_and_where(
    old: bytes, new: bytes, expected: str
) -> None:
    error = refused(fixture("orderhub_ack.xml").replace(old, new, 1))
    assert error.format == "orderhub"
    assert expected in error.reason


def test_native_file_without_any_acknowledgement_is_refused() -> None:
    xml = b'<PurchaseOrderAcknowledgement xmlns="urn:orderhub:purchase-order-ack:1"/>'
    assert "Missing child element(s). Expected is ( Acknowledgement )" in refused(xml).reason


# ---------------------------------------------------------------- not acknowledgements


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the file is empty"),
        (b"  \n", "the file is empty"),
        (b"PO shopify-1042-agriest accepted", "not well-formed XML"),
        (b"<PurchaseOrderAcknowledgement xmlns='urn:orderhub:purchase-order-ack:1'>",
         "not well-formed XML"),
        (b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>",
         "unknown root element 'Invoice' in namespace "
         "'urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'"),
        (b"<PurchaseOrder xmlns='urn:orderhub:purchase-order:1'/>",
         "unknown root element 'PurchaseOrder' in namespace 'urn:orderhub:purchase-order:1'"),
        (b"<ConfirmationRequest/>", "unknown root element 'ConfirmationRequest' (no namespace)"),
    ],
    ids=["empty", "blank", "text", "truncated", "ubl-invoice", "our-own-po", "bare-cxml-part"],
)
def test_what_is_not_an_acknowledgement_is_refused(data: bytes, expected: str) -> None:
    assert expected in refused(data).reason


def test_ack_invalid_is_an_orderhub_error_with_a_readable_message() -> None:
    error = refused(b"<Order/>")
    assert isinstance(error, OrderHubError)
    assert str(error).startswith("purchase-order acknowledgement invalid: unknown root element")


def test_oversize_file_is_refused_without_parsing_it() -> None:
    data = fixture("orderhub_ack.xml").replace(b"<Note>", b"<Note>" + b"x" * MAX_ACK_BYTES)
    started = time.perf_counter()
    error = refused(data)
    assert time.perf_counter() - started < 0.5
    assert f"more than the {MAX_ACK_BYTES} allowed" in error.reason


def test_file_of_exactly_the_size_cap_is_read() -> None:
    xml = fixture("orderhub_ack.xml")
    padded = xml + b" " * (MAX_ACK_BYTES - len(xml))  # white space after the root element
    assert len(padded) == MAX_ACK_BYTES
    assert len(parse_acknowledgement(padded)) == 2


def test_ubl_documents_must_not_declare_a_doctype() -> None:
    xml = _ubl().replace(b"<OrderResponse ", b"<!DOCTYPE OrderResponse>\n<OrderResponse ", 1)
    assert "OrderResponse must not declare a DOCTYPE" in refused(xml).reason


# ---------------------------------------------------------------- hostile files


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    return secret


def _native_with(doctype: str, po_number: str) -> bytes:
    xml = fixture("orderhub_ack.xml").replace(b"shopify-1042-agriest", po_number.encode())
    return xml.replace(b"<PurchaseOrderAcknowledgement",
                       doctype.encode() + b"\n<PurchaseOrderAcknowledgement", 1)


def _cxml_with(doctype: str, comment: str) -> bytes:
    xml = fixture("cxml_confirmation_accept.xml").replace(CXML_DOCTYPE.encode(), doctype.encode())
    return xml.replace(b"Thank you for your order.", comment.encode())


@pytest.mark.parametrize("fmt", ["orderhub", "cxml"])
def test_an_external_entity_is_refused_and_never_read(fmt: str, secret_file: Path) -> None:
    entity = f'[<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]'
    if fmt == "orderhub":
        xml = _native_with(f"<!DOCTYPE PurchaseOrderAcknowledgement {entity}>", "&xxe;")
    else:
        xml = _cxml_with(CXML_DOCTYPE[:-1] + f" {entity}>", "&xxe;")

    error = refused(xml)
    assert "declares entities or elements in its DOCTYPE" in error.reason
    assert "TOP-SECRET-CONTENT" not in str(error)


@pytest.mark.parametrize("fmt", ["orderhub", "cxml"])
def test_an_entity_expansion_bomb_is_refused_at_once(fmt: str) -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    subset = f"[{''.join(entities)}]"
    if fmt == "orderhub":
        xml = _native_with(f"<!DOCTYPE PurchaseOrderAcknowledgement {subset}>", "&lol9;")
    else:
        xml = _cxml_with(CXML_DOCTYPE[:-1] + f" {subset}>", "&lol9;")

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
    xml = _cxml_with(f'<!DOCTYPE cXML SYSTEM "{evil.as_uri()}">', "&injected;")

    error = refused(xml)
    assert "INJECTED-FROM-EVIL-DTD" not in str(error)


def test_an_entity_reference_under_the_official_cxml_doctype_is_refused() -> None:
    # Undeclared here, it would come from the official DTD, which is never loaded.
    error = refused(_cxml_with(CXML_DOCTYPE, "Thanks&nbsp;again."))
    assert "entity reference" in error.reason


def test_the_cxml_dtd_url_is_never_fetched() -> None:
    # The official URL is declared; reading works offline because it is never followed.
    assert only(fixture("cxml_confirmation_accept.xml")).status == "accepted"
