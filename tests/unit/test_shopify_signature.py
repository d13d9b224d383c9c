"""Shopify webhook authenticity (X-Shopify-Hmac-Sha256 over the raw body) and what a verified
delivery says about itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import timedelta

import pytest
from werkzeug.datastructures import Headers

from app.channels.shopify import ShopifyChannel
from app.errors import SignatureInvalid
from tests.unit.helpers import raw_fixture, utc

SECRET = "shpss_unit_current_0123456789abcdef"
PREVIOUS_SECRET = "shpss_unit_previous_fedcba9876543210"
UNKNOWN_SECRET = "shpss_unit_unknown_00112233445566"
SHOP = "garden-goods.myshopify.com"
WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
EVENT_ID = "98880550-7158-44d4-b7cd-2c97c8a091b5"
BODY = raw_fixture("orders_create.json")
JAPANESE_BODY = raw_fixture("order_jp_jpy.json")
HMAC = "X-Shopify-Hmac-Sha256"


def shopify_hmac(secret: str, body: bytes) -> str:
    """What Shopify sends: base64(HMAC-SHA256(app secret, raw body)). Computed here from the
    documented formula, not with the app's own `sign`, so a wrong `sign` cannot hide itself."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    lowercase: bool = False,
    changes: Mapping[str, str | None] | None = None,
) -> Headers:
    """Headers as Flask hands them to `verify` (werkzeug's case-insensitive `Headers`).

    `changes` replaces header values; None leaves the header out. `lowercase` sends every
    name in lower case, as HTTP/2 does."""
    values: dict[str, str | None] = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        HMAC: shopify_hmac(secret, body),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": WEBHOOK_ID,
        "X-Shopify-Event-Id": EVENT_ID,
        "X-Shopify-Triggered-At": "2026-11-20T14:14:05.123456789Z",
    }
    values.update(changes or {})
    return Headers(
        [(name.lower() if lowercase else name, value)
         for name, value in values.items() if value is not None]
    )


def channel(*secrets: str) -> ShopifyChannel:
    return ShopifyChannel(list(secrets or (SECRET, PREVIOUS_SECRET)))


def one_byte_changed(body: bytes) -> bytes:
    """The order total edited by one digit: 158.31 -> 158.30."""
    changed = body.replace(b'"total_price": "158.31"', b'"total_price": "158.30"')
    assert len(changed) == len(body)
    assert sum(a != b for a, b in zip(body, changed, strict=True)) == 1
    return changed


def reserialized(body: bytes, **dumps_options: object) -> bytes:
    """The same JSON content written out again (as a framework that parses and re-dumps would)."""
    again = json.dumps(json.loads(body), **dumps_options).encode()  # type: ignore[arg-type]
    assert json.loads(again) == json.loads(body)
    assert again != body
    return again


# ---------------------------------------------------------------- the signature

@pytest.mark.parametrize("body", [BODY, JAPANESE_BODY, b"{}"], ids=["order", "utf-8", "empty"])
def test_body_signed_with_the_app_secret_is_accepted(body):
    delivery = channel().verify(shopify_headers(body), body)

    assert delivery.channel == "shopify"
    assert delivery.delivery_id == WEBHOOK_ID


def test_body_signed_with_another_secret_is_refused():
    with pytest.raises(SignatureInvalid):
        channel().verify(shopify_headers(BODY, secret=UNKNOWN_SECRET), BODY)


@pytest.mark.parametrize("value", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_missing_signature_header_is_refused(value):
    headers = shopify_headers(BODY, changes={HMAC: value})

    with pytest.raises(SignatureInvalid, match="X-Shopify-Hmac-Sha256"):
        channel().verify(headers, BODY)


@pytest.mark.parametrize(
    ("secret", "accepted"),
    [(SECRET, True), (PREVIOUS_SECRET, True), (UNKNOWN_SECRET, False)],
    ids=["current", "previous", "unknown"],
)
def test_during_a_rotation_current_and_previous_secret_are_accepted(secret, accepted):
    headers = shopify_headers(BODY, secret=secret)
    rotating = ShopifyChannel([SECRET, PREVIOUS_SECRET])

    if accepted:
        assert rotating.verify(headers, BODY).delivery_id == WEBHOOK_ID
    else:
        with pytest.raises(SignatureInvalid):
            rotating.verify(headers, BODY)


def test_after_the_rotation_the_previous_secret_is_refused():
    with pytest.raises(SignatureInvalid):
        ShopifyChannel([SECRET]).verify(shopify_headers(BODY, secret=PREVIOUS_SECRET), BODY)


@pytest.mark.parametrize(
    ("original", "received"),
    [
        (BODY, one_byte_changed(BODY)),
        (BODY, BODY + b"\n"),
        (BODY, BODY + b" "),
        (BODY, b" " + BODY),
        (BODY, reserialized(BODY)),
        (BODY, reserialized(BODY, separators=(",", ":"))),
        (BODY, reserialized(BODY, indent=2, sort_keys=True)),
        (JAPANESE_BODY, reserialized(JAPANESE_BODY, ensure_ascii=False)),
        (JAPANESE_BODY, reserialized(JAPANESE_BODY)),  # \uXXXX escapes instead of UTF-8
        (BODY, BODY[:-1]),
    ],
    ids=[
        "one-byte-changed", "trailing-newline", "trailing-space", "leading-space",
        "re-dumped", "re-dumped-compact", "re-dumped-sorted", "re-dumped-utf8",
        "re-dumped-ascii-escapes", "truncated",
    ],
)
def test_body_that_differs_from_the_signed_bytes_is_refused(original, received):
    headers = shopify_headers(original)

    with pytest.raises(SignatureInvalid):
        channel().verify(headers, received)


def test_hex_encoded_digest_is_refused():
    """Shopify sends base64; a hex digest of the right HMAC is still not its signature."""
    hex_digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()

    with pytest.raises(SignatureInvalid):
        channel().verify(shopify_headers(BODY, changes={HMAC: hex_digest}), BODY)


def test_non_ascii_signature_header_is_refused_not_crashed():
    with pytest.raises(SignatureInvalid):
        channel().verify(shopify_headers(BODY, changes={HMAC: "ünïcödé-sïgnätürë=="}), BODY)


def test_a_channel_needs_a_secret():
    with pytest.raises(ValueError, match="secret"):
        ShopifyChannel([])


# ---------------------------------------------------------------- header names

def test_lowercase_header_names_as_sent_over_http2_are_understood():
    headers = shopify_headers(BODY, lowercase=True)
    assert "x-shopify-hmac-sha256" in [name for name, _ in headers.items()]

    delivery = channel().verify(headers, BODY)

    assert (delivery.delivery_id, delivery.topic, delivery.account) == (
        WEBHOOK_ID, "orders/create", SHOP)
    assert delivery.event_id == EVENT_ID
    assert delivery.api_version == "2026-10"
    assert delivery.triggered_at == utc(2026, 11, 20, 14, 14, 5, 123456)


def test_oddly_cased_header_names_are_understood():
    headers = Headers([
        ("x-SHOPIFY-hmac-SHA256", shopify_hmac(SECRET, BODY)),
        ("X-SHOPIFY-TOPIC", "orders/paid"),
        ("x-shopify-shop-domain", SHOP),
        ("X-Shopify-Webhook-ID", WEBHOOK_ID),
    ])

    delivery = channel().verify(headers, BODY)

    assert (delivery.delivery_id, delivery.topic, delivery.account) == (
        WEBHOOK_ID, "orders/paid", SHOP)


# ---------------------------------------------------------------- what verify returns

def test_verified_delivery_carries_the_shopify_headers():
    delivery = channel().verify(shopify_headers(BODY), BODY)

    assert delivery.channel == "shopify"
    assert delivery.delivery_id == WEBHOOK_ID
    assert delivery.topic == "orders/create"
    assert delivery.account == SHOP
    assert delivery.event_id == EVENT_ID
    assert delivery.api_version == "2026-10"
    # Shopify sends nanoseconds; Python keeps microseconds.
    assert delivery.triggered_at == utc(2026, 11, 20, 14, 14, 5, 123456)
    assert delivery.triggered_at is not None
    assert delivery.triggered_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2026-11-20T14:14:05Z", utc(2026, 11, 20, 14, 14, 5)),
        ("2026-11-20T09:14:05-05:00", utc(2026, 11, 20, 14, 14, 5)),
        ("2026-11-21T08:30:00+09:00", utc(2026, 11, 20, 23, 30, 0)),
        ("2026-11-20T14:14:05.877041743+00:00", utc(2026, 11, 20, 14, 14, 5, 877041)),
    ],
)
def test_triggered_at_is_aware_utc(header, expected):
    headers = shopify_headers(BODY, changes={"X-Shopify-Triggered-At": header})

    triggered_at = channel().verify(headers, BODY).triggered_at

    assert triggered_at == expected
    assert triggered_at is not None
    assert triggered_at.utcoffset() == timedelta(0)


def test_unreadable_triggered_at_does_not_refuse_the_delivery():
    headers = shopify_headers(BODY, changes={"X-Shopify-Triggered-At": "yesterday"})

    delivery = channel().verify(headers, BODY)

    assert delivery.triggered_at is None
    assert delivery.delivery_id == WEBHOOK_ID


def test_topic_and_shop_domain_are_normalized():
    headers = shopify_headers(BODY, changes={
        "X-Shopify-Topic": " Orders/Paid ",
        "X-Shopify-Shop-Domain": "Garden-Goods.myshopify.com",
    })

    delivery = channel().verify(headers, BODY)

    assert delivery.topic == "orders/paid"
    assert delivery.account == SHOP


def test_optional_headers_left_out_are_none():
    headers = shopify_headers(BODY, changes={
        "X-Shopify-Event-Id": None,
        "X-Shopify-API-Version": None,
        "X-Shopify-Triggered-At": None,
    })

    delivery = channel().verify(headers, BODY)

    assert delivery.event_id is None
    assert delivery.api_version is None
    assert delivery.triggered_at is None


@pytest.mark.parametrize("webhook_id", [None, "", "  "], ids=["absent", "empty", "blank"])
def test_without_webhook_id_the_same_body_gets_the_same_delivery_id(webhook_id):
    def delivery_id(body: bytes) -> str:
        headers = shopify_headers(body, changes={"X-Shopify-Webhook-Id": webhook_id})
        return channel().verify(headers, body).delivery_id

    first = delivery_id(BODY)

    assert first.strip()
    assert len(first) <= 255
    assert delivery_id(BODY) == first  # a retry of the same body dedupes
    assert delivery_id(JAPANESE_BODY) != first  # another body is another delivery
    assert first != WEBHOOK_ID
