"""Shopify REST order payloads (orders/* webhooks) in OrderHub's terms, and payloads that
cannot be understood."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.channels.base import Address, Customer, LineData, OrderData
from app.channels.shopify import ShopifyChannel
from app.errors import PayloadInvalid
from tests.unit.helpers import load_fixture, utc

SHOPIFY = ShopifyChannel(["shpss_unit_current_0123456789abcdef"])
ORDER_FIXTURES = [
    "orders_create.json",
    "order_digital_gift_card.json",
    "order_jp_jpy.json",
    "order_de_eur.json",
    "order_cancelled_refunded.json",
    "order_test_notification.json",
    "orders_updated_after_edit.json",
]
DELETE = object()


def parse(name: str) -> OrderData:
    return SHOPIFY.parse_order(load_fixture(name))


def line(order: OrderData, external_id: str) -> LineData:
    matches = [item for item in order.lines if item.external_id == external_id]
    assert len(matches) == 1, f"expected one line {external_id}, got {len(matches)}"
    return matches[0]


def amounts(order: OrderData) -> list[Any]:
    """Every money value of an order and its lines (None where the payload had none)."""
    found: list[Any] = [order.total_price, order.subtotal_price, order.total_discounts,
                        order.total_shipping, order.total_tax]
    for item in order.lines:
        found += [item.price, item.total_discount]
    return found


def changed(payload: dict[str, Any], *edits: tuple[tuple[str | int, ...], Any]) -> Any:
    """A copy of `payload` with each (path, value) edit applied; DELETE removes the key."""
    data = copy.deepcopy(payload)
    for path, value in edits:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return data


def is_utc(moment: datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == timedelta(0)


def names_field(reason: str, field: str) -> bool:
    """The reason starts with the whole field path (not a longer path that begins with it)."""
    return re.match(re.escape(field) + r"(?![\w.\[])", reason) is not None


# ---------------------------------------------------------------- a multi-line order

def test_order_identity():
    order = parse("orders_create.json")

    assert order.external_id == "5813441806523"
    assert order.number == "#1042"
    assert order.currency == "USD"
    assert order.financial_status == "paid"
    assert order.fulfillment_status is None
    assert order.test is False
    assert order.is_cancelled is False
    assert order.note == "Please leave at the back door."


def test_order_totals_are_exact_decimals():
    order = parse("orders_create.json")

    assert order.total_price == Decimal("158.31")
    assert order.subtotal_price == Decimal("139.40")
    assert order.total_discounts == Decimal("15.49")
    assert order.total_tax == Decimal("8.92")
    assert order.total_shipping == Decimal("9.99")
    # Not only equal: the digits the seller sees are kept ("139.40", not "139.4").
    assert str(order.subtotal_price) == "139.40"


def test_order_times_from_minus_five_hours_are_utc():
    order = parse("orders_create.json")

    assert order.placed_at == utc(2026, 11, 20, 14, 14, 3)
    assert order.source_updated_at == utc(2026, 11, 20, 14, 14, 5)
    assert is_utc(order.placed_at)
    assert is_utc(order.source_updated_at)


def test_customer_name_email_and_phone():
    assert parse("orders_create.json").customer == Customer(
        email="maria.schmidt@example.com", name="Maria Schmidt", phone="+17805550176")


def test_shipping_address_fields():
    assert parse("orders_create.json").shipping_address == Address(
        name="Maria Schmidt",
        company=None,
        address1="2259 Park Ct",
        address2="Apartment 5",
        city="Drayton Valley",
        province="Alberta",
        province_code="AB",
        zip="T0E 0M0",
        country="Canada",
        country_code="CA",
        phone="780-555-0176",
    )


def test_every_line_with_sku_vendor_quantity_price_and_discount():
    order = parse("orders_create.json")

    assert [(i.external_id, i.sku, i.vendor, i.quantity, i.price, i.total_discount)
            for i in order.lines] == [
        ("14511244968123", "AG-BED-CED-L", "Agriest", 2, Decimal("59.95"), Decimal("11.99")),
        ("14511244968124", "GS-SOIL-40", "GreenSoil Co", 1, Decimal("24.99"), Decimal("2.50")),
        ("14511244968125", "AG-TRWL", "Agriest", 1, Decimal("10.00"), Decimal("1.00")),
    ]


def test_line_product_and_variant():
    bed = line(parse("orders_create.json"), "14511244968123")

    assert bed.title == "Raised Garden Bed"
    assert bed.variant_title == "Cedar / Large"
    assert bed.product_id == "8112233445566"
    assert bed.variant_id == "44556677889900"
    assert bed.requires_shipping is True
    assert bed.gift_card is False


@pytest.mark.parametrize("name", ["orders_create.json", "order_de_eur.json", "order_jp_jpy.json"])
def test_line_discounts_add_up_to_the_order_discount(name):
    order = parse(name)

    assert sum((item.total_discount for item in order.lines), Decimal("0")) == (
        order.total_discounts)


@pytest.mark.parametrize("name", ORDER_FIXTURES)
def test_no_amount_is_ever_a_float(name):
    found = [value for value in amounts(parse(name)) if value is not None]

    assert found
    assert all(type(value) is Decimal for value in found), found


@pytest.mark.parametrize(
    ("name", "placed_at", "updated_at"),
    [
        ("orders_create.json", utc(2026, 11, 20, 14, 14, 3), utc(2026, 11, 20, 14, 14, 5)),
        ("order_jp_jpy.json", utc(2026, 11, 20, 23, 30, 0), utc(2026, 11, 20, 23, 30, 2)),
        ("order_de_eur.json", utc(2026, 11, 20, 16, 45, 30), utc(2026, 11, 20, 16, 45, 33)),
        ("order_digital_gift_card.json", utc(2026, 11, 23, 0, 40, 11),
         utc(2026, 11, 23, 0, 40, 13)),
    ],
    ids=["-05:00", "+09:00", "+01:00", "-08:00"],
)
def test_times_with_offsets_become_the_same_instant_in_utc(name, placed_at, updated_at):
    order = parse(name)

    assert order.placed_at == placed_at
    assert order.source_updated_at == updated_at
    assert is_utc(order.placed_at)
    assert is_utc(order.source_updated_at)
    # The UTC calendar date, which a daily report would use, moves with the offset.
    assert order.placed_at.date() == placed_at.date()


def test_updated_at_missing_falls_back_to_created_at():
    payload = changed(load_fixture("orders_create.json"), (("updated_at",), DELETE))

    order = SHOPIFY.parse_order(payload)

    assert order.source_updated_at == utc(2026, 11, 20, 14, 14, 3)


# ---------------------------------------------------------------- exact money

@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("total_price",), "19.90"),
        (("total_price",), "1500"),
        (("total_price",), "0.10"),
        (("total_price",), "0.00"),
        (("subtotal_price",), "0.00"),
        (("line_items", 0, "price"), "19.90"),
        (("total_shipping_price_set", "shop_money", "amount"), "0.00"),
    ],
    ids=["total-19.90", "total-1500", "total-0.10", "total-0.00", "subtotal-0.00",
         "line-price-19.90", "shipping-0.00"],
)
def test_amounts_keep_the_digits_shopify_sent(path, text):
    """Money is stored and shown exactly as the platform wrote it, zero included."""
    order = SHOPIFY.parse_order(changed(load_fixture("orders_create.json"), (path, text)))

    values = {
        "total_price": order.total_price,
        "subtotal_price": order.subtotal_price,
        "price": order.lines[0].price,
        "amount": order.total_shipping,
    }
    assert str(values[str(path[-1])]) == text


def test_free_line_keeps_its_price_as_written():
    calendar = line(parse("order_digital_gift_card.json"), "14511300011003")

    assert calendar.price == Decimal("0.00")
    assert str(calendar.price) == "0.00"


# ---------------------------------------------------------------- digital goods, gift cards

def test_digital_order_has_no_shipping_address_and_nothing_to_ship():
    order = parse("order_digital_gift_card.json")

    assert order.shipping_address is None
    assert order.total_shipping == Decimal("0.00")
    assert [item.requires_shipping for item in order.lines] == [False, False, False]
    assert order.customer == Customer(
        email="chidi.okafor@example.com", name="Chidi Okafor", phone=None)
    assert order.total_price == Decimal("62.00")


def test_gift_card_line():
    card = line(parse("order_digital_gift_card.json"), "14511300011001")

    assert card.gift_card is True
    assert card.requires_shipping is False
    assert card.title == "Garden Goods Gift Card"
    assert card.variant_title == "$50.00"
    assert card.price == Decimal("50.00")
    assert card.quantity == 1


@pytest.mark.parametrize(
    ("external_id", "raw_sku"),
    [("14511300011001", '""'), ("14511300011002", "null")],
)
def test_line_without_sku_has_none(external_id, raw_sku):
    item = line(parse("order_digital_gift_card.json"), external_id)

    assert item.sku is None, f"sku {raw_sku} should read as no SKU"


def test_blank_sku_is_no_sku():
    payload = changed(load_fixture("orders_create.json"), (("line_items", 0, "sku"), "   "))

    assert SHOPIFY.parse_order(payload).lines[0].sku is None


# ---------------------------------------------------------------- Japan, JPY, unicode

def test_japanese_order_in_yen_has_no_decimals():
    order = parse("order_jp_jpy.json")

    assert order.currency == "JPY"
    assert order.number == "#2051"
    assert str(order.total_price) == "12300"
    assert str(order.subtotal_price) == "11500"
    assert str(order.total_tax) == "1118"
    assert str(order.total_shipping) == "800"
    matcha = line(order, "15220011223301")
    assert (matcha.quantity, str(matcha.price)) == (2, "2800")
    teapot = line(order, "15220011223302")
    assert (teapot.price, teapot.total_discount) == (Decimal("6400"), Decimal("500"))


def test_japanese_names_address_and_emoji_note_are_kept_verbatim():
    order = parse("order_jp_jpy.json")

    assert order.shipping_address == Address(
        name="山田 花子",
        company=None,
        address1="神南1-2-3",
        address2="渋谷マンション 401",
        city="渋谷区",
        province="Tōkyō",
        province_code="JP-13",
        zip="150-0041",
        country="Japan",
        country_code="JP",
        phone="+81 3-1234-5678",
    )
    assert order.note == "置き配でお願いします 🌸📦"
    assert order.customer is not None
    assert order.customer.name == "花子 山田"  # first_name, then last_name, as Shopify splits it
    assert order.customer.phone == "+819012345678"
    matcha = line(order, "15220011223301")
    assert (matcha.title, matcha.variant_title, matcha.vendor) == (
        "抹茶 (Matcha) 100g", "濃茶", "宇治茶園")


# ---------------------------------------------------------------- Germany, EUR, discounts

def test_german_order_in_euro():
    order = parse("order_de_eur.json")

    assert order.currency == "EUR"
    assert order.number == "#1044"
    assert str(order.total_price) == "79.10"
    assert order.total_discounts == Decimal("10.00")
    assert order.total_shipping == Decimal("4.90")
    assert order.total_tax == Decimal("12.63")
    # Taxes are included in prices here, so the total is subtotal plus shipping.
    assert order.subtotal_price is not None and order.total_shipping is not None
    assert order.total_price == order.subtotal_price + order.total_shipping


def test_order_level_discount_is_spread_over_the_lines():
    order = parse("order_de_eur.json")

    soil = line(order, "14890011220001")
    can = line(order, "14890011220002")
    assert (soil.quantity, str(soil.price), soil.total_discount) == (3, "19.90", Decimal("7.09"))
    assert (can.quantity, can.price, can.total_discount) == (1, Decimal("24.50"), Decimal("2.91"))
    # Line prices minus their discounts give the subtotal.
    assert sum((i.price * i.quantity - i.total_discount for i in order.lines), Decimal("0")) == (
        order.subtotal_price)


def test_umlauts_in_customer_address_and_lines_are_kept():
    order = parse("order_de_eur.json")

    assert order.customer == Customer(
        email="juergen.weiss@example.de", name="Jürgen Weiß", phone="+492111234567")
    assert order.shipping_address == Address(
        name="Jürgen Weiß",
        company="Gärtnerei Grünfeld GmbH",
        address1="Königsallee 12",
        address2="Hinterhaus, 3. OG",
        city="Düsseldorf",
        province=None,
        province_code=None,
        zip="40212",
        country="Germany",
        country_code="DE",
        phone="+49 211 1234567",
    )
    assert line(order, "14890011220002").title == "Gießkanne 10 L – verzinkt"
    assert line(order, "14890011220002").vendor == "Zinkwerk Schäfer"
    assert order.note == "Bitte beim Nachbarn (Müller) abgeben, falls niemand da ist."


def test_line_discount_falls_back_to_total_discount_without_allocations():
    payload = changed(
        load_fixture("orders_create.json"),
        (("line_items", 0, "discount_allocations"), []),
        (("line_items", 0, "total_discount"), "5.00"),
    )

    assert SHOPIFY.parse_order(payload).lines[0].total_discount == Decimal("5.00")


# ---------------------------------------------------------------- cancelled and test orders

def test_cancelled_refunded_order():
    order = parse("order_cancelled_refunded.json")

    assert order.is_cancelled is True
    assert order.cancelled_at == utc(2026, 11, 21, 15, 2, 11)
    assert is_utc(order.cancelled_at)
    assert order.cancel_reason == "customer"
    assert order.financial_status == "refunded"
    assert order.source_updated_at == utc(2026, 11, 21, 15, 2, 12)
    # The cancelled line has nothing left to send (current_quantity 0 of the 2 ordered).
    assert [(item.sku, item.quantity) for item in order.lines] == [("AG-SHEAR-BP", 0)]


def test_shopify_test_notification_is_a_test_order():
    order = parse("order_test_notification.json")

    assert order.test is True
    assert order.number == "#9999"
    assert order.financial_status == "voided"
    assert order.cancel_reason == "customer"
    assert order.is_cancelled is True
    assert order.cancelled_at == utc(2026, 11, 20, 18, 0, 0)


# ---------------------------------------------------------------- ids, quantities, fallbacks

def test_ids_larger_than_2_pow_53_are_exact():
    order = parse("order_test_notification.json")

    assert order.external_id == "820982911946154508"
    assert [item.external_id for item in order.lines] == [
        "866550311766439020", "141249953214522974"]
    assert order.lines[1].product_id == "9007199254740993"  # 2**53 + 1
    assert order.lines[1].variant_id == "18014398509481985"  # 2**54 + 1
    assert int(order.external_id) > 2**53


def test_current_quantity_after_an_edit_wins_over_the_ordered_quantity():
    order = parse("orders_updated_after_edit.json")

    assert [(item.external_id, item.quantity) for item in order.lines] == [
        ("14511244968123", 1),  # ordered 2, one removed by the edit
        ("14511244968124", 0),  # removed by the edit
        ("14511244968130", 1),  # added by the edit
    ]
    assert order.source_updated_at == utc(2026, 11, 21, 16, 5, 14)
    assert order.financial_status == "partially_refunded"


def test_quantity_is_used_when_an_older_api_version_sends_no_current_quantity():
    order = parse("order_test_notification.json")  # its lines have no current_quantity

    assert [item.quantity for item in order.lines] == [1, 1]


@pytest.mark.parametrize(
    ("edits", "number"),
    [
        ((), "#1042"),
        (((("name",), DELETE),), "1042"),
        (((("name",), None), (("order_number",), None)), "5813441806523"),
    ],
    ids=["name", "order_number", "id"],
)
def test_order_number_as_the_seller_sees_it(edits, number):
    payload = changed(load_fixture("orders_create.json"), *edits)

    assert SHOPIFY.parse_order(payload).number == number


def test_guest_checkout_without_customer_record_keeps_the_contact():
    payload = changed(load_fixture("orders_create.json"), (("customer",), None))

    assert SHOPIFY.parse_order(payload).customer == Customer(
        email="maria.schmidt@example.com", name=None, phone=None)


def test_order_with_no_contact_at_all_has_no_customer():
    payload = changed(
        load_fixture("orders_create.json"),
        (("customer",), None), (("email",), None), (("contact_email",), None), (("phone",), None),
    )

    assert SHOPIFY.parse_order(payload).customer is None


def test_lower_case_currency_is_upper_cased():
    payload = changed(load_fixture("orders_create.json"), (("currency",), "eur"))

    assert SHOPIFY.parse_order(payload).currency == "EUR"


# ---------------------------------------------------------------- payloads that are refused

BAD_PAYLOADS = [
    ("missing-id", [(("id",), DELETE)], "id"),
    ("null-id", [(("id",), None)], "id"),
    ("empty-id", [(("id",), "")], "id"),
    ("missing-created_at", [(("created_at",), DELETE)], "created_at"),
    ("null-created_at", [(("created_at",), None)], "created_at"),
    ("unreadable-created_at", [(("created_at",), "20/11/2026 09:14")], "created_at"),
    ("numeric-created_at", [(("created_at",), 1763647443)], "created_at"),
    ("unreadable-updated_at", [(("updated_at",), "yesterday")], "updated_at"),
    ("numeric-cancelled_at", [(("cancelled_at",), 12345)], "cancelled_at"),
    ("price-abc", [(("line_items", 0, "price"), "abc")], "line_items[0].price"),
    ("price-decimal-comma", [(("line_items", 0, "price"), "59,95")], "line_items[0].price"),
    ("price-nan", [(("line_items", 0, "price"), "NaN")], "line_items[0].price"),
    ("price-missing", [(("line_items", 2, "price"), DELETE)], "line_items[2].price"),
    ("quantity-two",
     [(("line_items", 0, "current_quantity"), DELETE), (("line_items", 0, "quantity"), "two")],
     "line_items[0].quantity"),
    ("current_quantity-two", [(("line_items", 0, "current_quantity"), "two")],
     "line_items[0].current_quantity"),
    ("quantity-negative",
     [(("line_items", 1, "current_quantity"), DELETE), (("line_items", 1, "quantity"), -1)],
     "line_items[1].quantity"),
    ("current_quantity-negative", [(("line_items", 1, "current_quantity"), -2)],
     "line_items[1].current_quantity"),
    ("quantity-fraction",
     [(("line_items", 0, "current_quantity"), DELETE),
      (("line_items", 0, "quantity"), Decimal("1.5"))],
     "line_items[0].quantity"),
    ("quantity-true",
     [(("line_items", 0, "current_quantity"), DELETE), (("line_items", 0, "quantity"), True)],
     "line_items[0].quantity"),
    ("line_items-object", [(("line_items",), {"0": {"id": 1}})], "line_items"),
    ("line_items-missing", [(("line_items",), DELETE)], "line_items"),
    ("line-not-object", [(("line_items", 2), "AG-TRWL")], "line_items[2]"),
    ("line-id-missing", [(("line_items", 0, "id"), DELETE)], "line_items[0].id"),
    ("line-title-missing",
     [(("line_items", 0, "title"), DELETE), (("line_items", 0, "name"), DELETE)],
     "line_items[0].title"),
    ("currency-US", [(("currency",), "US")], "currency"),
    ("currency-missing", [(("currency",), DELETE)], "currency"),
    ("currency-number", [(("currency",), 840)], "currency"),
    ("total_price-missing", [(("total_price",), DELETE)], "total_price"),
    ("total_price-words", [(("total_price",), "one hundred")], "total_price"),
    ("total_tax-decimal-comma", [(("total_tax",), "8,92")], "total_tax"),
    ("discount-amount-ten",
     [(("line_items", 0, "discount_allocations", 0, "amount"), "ten")],
     "line_items[0].discount_allocations[0].amount"),
    ("shipping-amount-free",
     [(("total_shipping_price_set", "shop_money", "amount"), "free")],
     "total_shipping_price_set.shop_money.amount"),
]


@pytest.mark.parametrize(
    ("edits", "field"),
    [(edits, field) for _, edits, field in BAD_PAYLOADS],
    ids=[case_id for case_id, _, _ in BAD_PAYLOADS],
)
def test_bad_payload_is_refused_with_a_reason_naming_the_field(edits, field):
    payload = changed(load_fixture("orders_create.json"), *edits)

    with pytest.raises(PayloadInvalid) as raised:
        SHOPIFY.parse_order(payload)

    assert names_field(raised.value.reason, field), raised.value.reason


@pytest.mark.parametrize("field", ["created_at", "updated_at", "cancelled_at"])
def test_timestamp_without_time_zone_is_refused(field):
    payload = changed(load_fixture("orders_create.json"), ((field,), "2026-11-20T09:14:03"))

    with pytest.raises(PayloadInvalid) as raised:
        SHOPIFY.parse_order(payload)

    assert names_field(raised.value.reason, field), raised.value.reason
    assert "time zone" in raised.value.reason


@pytest.mark.parametrize(
    "payload",
    [[load_fixture("orders_create.json")], "#1042", None, 5813441806523],
    ids=["array", "string", "null", "number"],
)
def test_payload_that_is_not_a_json_object_is_refused(payload):
    with pytest.raises(PayloadInvalid, match="not an object") as raised:
        SHOPIFY.parse_order(payload)

    assert "order payload" in raised.value.reason
