"""The intake rules that need no database: what a delivery's body means (`interpret`), which
topics are processed, and the out-of-order rule (`supersedes`)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.channels.base import OrderData, TopicAction
from app.channels.shopify import ShopifyChannel
from app.intake import Interpretation, interpret, supersedes
from app.models import EventStatus
from tests.unit.helpers import raw_fixture, utc

SHOPIFY = ShopifyChannel(["shpss_unit_current_0123456789abcdef"])
ORDER_BODY = raw_fixture("orders_create.json")
EDIT_BODY = raw_fixture("orders_edited.json")
STORED_AT = utc(2026, 11, 20, 14, 14, 5)


def quarantined_reason(meaning: Interpretation) -> str:
    """The reason of a quarantined delivery, which an operator reads to fix it."""
    assert meaning.status == EventStatus.QUARANTINED
    assert meaning.order is None and meaning.reference is None
    assert meaning.reason is not None and meaning.reason.strip()
    return meaning.reason


def order_version(updated_at: datetime, *, cancelled: bool = False) -> OrderData:
    """The stored order as Shopify described it at `updated_at`, cancelled or not."""
    order = SHOPIFY.parse_order(json.loads(ORDER_BODY, parse_float=Decimal))
    return dataclasses.replace(
        order,
        source_updated_at=updated_at,
        cancelled_at=updated_at if cancelled else None,
        cancel_reason="customer" if cancelled else None,
    )


# ---------------------------------------------------------------- topics

@pytest.mark.parametrize(
    "topic", ["orders/create", "orders/updated", "orders/paid", "orders/cancelled",
              "orders/edited"])
def test_order_topics_are_processed(topic):
    assert SHOPIFY.topic_action(topic) is TopicAction.PROCESS


@pytest.mark.parametrize(
    "topic", ["products/update", "customers/create", "app/uninstalled", "refunds/create"])
def test_other_topics_are_only_acknowledged(topic):
    assert SHOPIFY.topic_action(topic) is TopicAction.IGNORE


# ---------------------------------------------------------------- interpret: orders

@pytest.mark.parametrize("topic", ["orders/create", "orders/updated", "orders/paid"])
def test_valid_order_is_processed_with_the_order(topic):
    meaning = interpret(SHOPIFY, topic, ORDER_BODY)

    assert meaning.status == EventStatus.PROCESSED
    assert meaning.reason is None
    assert meaning.reference is None
    assert isinstance(meaning.order, OrderData)
    assert meaning.order.external_id == "5813441806523"
    assert meaning.order.number == "#1042"
    assert meaning.order.total_price == Decimal("158.31")


def test_cancellation_delivery_is_processed_as_a_cancelled_order():
    meaning = interpret(SHOPIFY, "orders/cancelled", raw_fixture("order_cancelled_refunded.json"))

    assert meaning.status == EventStatus.PROCESSED
    assert meaning.order is not None
    assert meaning.order.is_cancelled
    assert meaning.order.cancel_reason == "customer"


def test_money_sent_as_json_numbers_keeps_its_digits():
    body = ORDER_BODY.replace(b'"price": "59.95"', b'"price": 19.90', 1)
    assert body != ORDER_BODY

    meaning = interpret(SHOPIFY, "orders/create", body)

    assert meaning.order is not None
    price = meaning.order.lines[0].price
    assert type(price) is Decimal
    assert str(price) == "19.90"


def test_ids_larger_than_2_pow_53_survive_decoding_exactly():
    meaning = interpret(SHOPIFY, "orders/create", raw_fixture("order_test_notification.json"))

    assert meaning.order is not None
    assert meaning.order.external_id == "820982911946154508"
    assert meaning.order.lines[1].variant_id == "18014398509481985"


# ---------------------------------------------------------------- interpret: orders/edited

def test_order_edit_is_processed_as_a_reference_to_the_order():
    meaning = interpret(SHOPIFY, "orders/edited", EDIT_BODY)

    assert meaning.status == EventStatus.PROCESSED
    assert meaning.order is None
    assert meaning.reference is not None
    assert meaning.reference.external_id == "5813441806523"
    assert meaning.reference.note


def test_order_edit_for_an_order_id_larger_than_2_pow_53_is_exact():
    body = EDIT_BODY.replace(b'"order_id": 5813441806523', b'"order_id": 820982911946154508')
    assert body != EDIT_BODY

    meaning = interpret(SHOPIFY, "orders/edited", body)

    assert meaning.reference is not None
    assert meaning.reference.external_id == "820982911946154508"


@pytest.mark.parametrize(
    "body",
    [
        EDIT_BODY.replace(b'"order_id": 5813441806523,', b""),
        EDIT_BODY.replace(b'"order_id": 5813441806523', b'"order_id": null'),
        b'{"order_edit": null}',
        ORDER_BODY,  # a whole order sent under the edit topic
        b"[]",
    ],
    ids=["no-order_id", "null-order_id", "null-order_edit", "order-instead", "array"],
)
def test_order_edit_without_an_order_id_is_quarantined(body):
    assert "order_edit.order_id" in quarantined_reason(interpret(SHOPIFY, "orders/edited", body))


# ---------------------------------------------------------------- interpret: other topics

@pytest.mark.parametrize("topic", ["products/update", "customers/create", "app/uninstalled"])
@pytest.mark.parametrize("body", [ORDER_BODY, b"not json at all"], ids=["json", "not-json"])
def test_unknown_topic_is_ignored_whatever_the_body(topic, body):
    meaning = interpret(SHOPIFY, topic, body)

    assert meaning.status == EventStatus.IGNORED
    assert meaning.order is None and meaning.reference is None
    assert meaning.reason is not None and topic in meaning.reason


def test_delivery_without_a_topic_is_quarantined():
    assert "topic" in quarantined_reason(interpret(SHOPIFY, "", ORDER_BODY))


# ---------------------------------------------------------------- interpret: bad bodies

@pytest.mark.parametrize(
    "body",
    [
        ORDER_BODY[: len(ORDER_BODY) // 2],
        b"",
        b"<html><body>502 Bad Gateway</body></html>",
        b"{'id': 1}",
        b"[" * 100_000,
    ],
    ids=["truncated", "empty", "html", "python-repr", "deeply-nested"],
)
def test_body_that_is_not_json_is_quarantined(body):
    assert "JSON" in quarantined_reason(interpret(SHOPIFY, "orders/create", body))


@pytest.mark.parametrize(
    "body",
    [
        ORDER_BODY.replace(b'"note": "Please leave at the back door."',
                           '"note": "Bitte bei Müller abgeben"'.encode("latin-1")),
        b'{"id": 1, "note": "\xff\xfe"}',
        b'{"id": 1, "note": "\xed\xa0\x80"}',  # a UTF-16 surrogate encoded as UTF-8
    ],
    ids=["latin-1", "stray-bytes", "surrogate"],
)
def test_body_that_is_not_utf8_is_quarantined(body):
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")

    assert quarantined_reason(interpret(SHOPIFY, "orders/create", body))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b'"currency": "USD"', b'"currency": "US"', "currency"),
        (b'"id": 5813441806523,', b"", "id"),
        (b'"created_at": "2026-11-20T09:14:03-05:00"', b'"created_at": "2026-11-20T09:14:03"',
         "created_at"),
        (b'"quantity": 2,', b'"quantity": "two",', "line_items[0].quantity"),
    ],
    ids=["currency-US", "missing-id", "naive-created_at", "quantity-two"],
)
def test_json_that_is_not_a_valid_order_is_quarantined_naming_the_field(old, new, field):
    body = ORDER_BODY.replace(old, new, 1)
    if field == "line_items[0].quantity":  # an older API version: no current_quantity
        body = body.replace(b'"current_quantity": 2,', b"", 1)
    assert body != ORDER_BODY

    assert quarantined_reason(interpret(SHOPIFY, "orders/create", body)).startswith(field)


def test_json_array_instead_of_an_order_is_quarantined():
    body = b"[" + ORDER_BODY + b"]"

    assert "object" in quarantined_reason(interpret(SHOPIFY, "orders/create", body))


# ---------------------------------------------------------------- supersedes

SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("incoming_at", "incoming_cancelled", "stored_cancelled", "replaces"),
    [
        # older never overwrites
        (STORED_AT - SECOND, False, False, False),
        (STORED_AT - timedelta(microseconds=1), False, False, False),
        (STORED_AT - timedelta(days=1), False, True, False),
        (STORED_AT - SECOND, True, False, False),
        # newer does
        (STORED_AT + SECOND, False, False, True),
        (STORED_AT + timedelta(hours=4), False, False, True),
        (STORED_AT + SECOND, False, True, True),
        # a newer cancellation wins
        (STORED_AT + SECOND, True, False, True),
        (STORED_AT + SECOND, True, True, True),
        # equal replaces (a replay, or two events of the same second) ...
        (STORED_AT, False, False, True),
        (STORED_AT, True, False, True),
        (STORED_AT, True, True, True),
        # ... unless it would undo a cancellation
        (STORED_AT, False, True, False),
    ],
    ids=[
        "older", "older-by-1us", "older-than-cancelled", "older-cancellation",
        "newer", "newer-by-hours", "newer-than-cancelled",
        "newer-cancellation", "newer-cancelled-again",
        "equal", "equal-cancellation", "equal-both-cancelled",
        "equal-would-undo-cancellation",
    ],
)
def test_out_of_order_rule(incoming_at, incoming_cancelled, stored_cancelled, replaces):
    incoming = order_version(incoming_at, cancelled=incoming_cancelled)

    assert supersedes(incoming, STORED_AT, stored_cancelled) is replaces


def test_same_instant_written_in_another_offset_counts_as_equal():
    tokyo = datetime.fromisoformat("2026-11-20T23:14:05+09:00")
    assert tokyo == STORED_AT

    assert supersedes(order_version(tokyo), STORED_AT, False) is True
    assert supersedes(order_version(tokyo), STORED_AT, True) is False


def test_retry_of_an_old_delivery_after_a_cancellation_does_not_revive_the_order():
    """orders/create (14:14:05) is retried after orders/cancelled (15:02:12) was stored."""
    created = interpret(SHOPIFY, "orders/create", ORDER_BODY).order
    cancelled = interpret(
        SHOPIFY, "orders/cancelled", raw_fixture("order_cancelled_refunded.json")).order
    assert created is not None and cancelled is not None

    assert supersedes(created, cancelled.source_updated_at, cancelled.is_cancelled) is False
    assert supersedes(cancelled, created.source_updated_at, created.is_cancelled) is True


def test_a_parser_bug_quarantines_instead_of_losing_the_delivery() -> None:
    class Exploding(ShopifyChannel):
        def parse_event(self, topic: str, payload: Any) -> Any:
            raise RuntimeError("unexpected shape")

    meaning = interpret(Exploding(["secret-0123456789"]), "orders/create", b'{"id": 1}')
    assert meaning.status == "quarantined"
    assert meaning.reason is not None and "parser error" in meaning.reason


def test_a_date_out_of_range_is_a_payload_error() -> None:
    body = b'{"id": 1, "created_at": "0001-01-01T00:00:00+01:00", "currency": "USD", ' \
           b'"total_price": "1.00", "line_items": []}'
    meaning = interpret(ShopifyChannel(["secret-0123456789"]), "orders/create", body)
    assert meaning.status == "quarantined"
    assert meaning.reason is not None and "out of range" in meaning.reason


def test_same_second_versions_are_ordered_by_trigger_time() -> None:
    order = ShopifyChannel(["secret-0123456789"]).parse_order(
        json.loads(raw_fixture("orders_create.json"), parse_float=Decimal))
    second = order.source_updated_at
    earlier, later = utc(2026, 11, 20, 14, 14, 5), utc(2026, 11, 20, 14, 14, 5, 500_000)
    assert not supersedes(order, second, False, incoming_triggered_at=earlier,
                          stored_triggered_at=later)
    assert supersedes(order, second, False, incoming_triggered_at=later,
                      stored_triggered_at=earlier)
    assert supersedes(order, second, False, incoming_triggered_at=None,
                      stored_triggered_at=later)  # unknown: apply, as before
