"""Shopify: webhook verification and the REST order payload in OrderHub's terms.

Shopify signs each HTTPS delivery with base64(HMAC-SHA256(app secret, raw body)) in
`X-Shopify-Hmac-Sha256`. Nothing in the signature covers a timestamp, so replays are stopped by
deduplicating on `X-Shopify-Webhook-Id`, and stale data by comparing the order's `updated_at`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.channels.base import (
    Address,
    Customer,
    Delivery,
    Headers,
    LineData,
    OrderData,
    OrderReference,
    TopicAction,
)
from app.errors import PayloadInvalid, SignatureInvalid

NAME = "shopify"
ORDER_TOPICS = frozenset(
    {"orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/edited"}
)
ORDER_EDIT_TOPIC = "orders/edited"


class ShopifyChannel:
    """The Shopify channel; `secrets` holds the current app secret and, during a rotation, the
    previous one."""

    name = NAME

    def __init__(self, secrets: Sequence[str], shop_domain: str | None = None) -> None:
        if not secrets or not all(secrets):
            raise ValueError("ShopifyChannel needs non-empty webhook secrets")
        self._keys = tuple(s.encode() for s in secrets)
        self._shop = shop_domain.strip().lower() if shop_domain else None

    def account_allowed(self, account: str) -> bool:
        # One app secret can sign for several shops; with SHOPIFY_SHOP_DOMAIN set, only that
        # shop's orders become purchase orders (two shops' "#1042" would otherwise collide).
        return self._shop is None or account == self._shop

    def verify(self, headers: Headers, raw_body: bytes) -> Delivery:
        """Check `X-Shopify-Hmac-Sha256` against the raw body with every accepted secret."""
        given = headers.get("X-Shopify-Hmac-Sha256")
        if not given:
            raise SignatureInvalid("missing X-Shopify-Hmac-Sha256 header")
        if not signature_matches(self._keys, raw_body, given.strip()):
            raise SignatureInvalid("X-Shopify-Hmac-Sha256 does not match the body")
        delivery_id = (headers.get("X-Shopify-Webhook-Id") or "").strip()
        if not delivery_id:
            # Shopify always sends one; without it, identical bodies still dedupe.
            delivery_id = "sha256:" + hashlib.sha256(raw_body).hexdigest()
        return Delivery(
            channel=NAME,
            delivery_id=delivery_id[:255],
            topic=(headers.get("X-Shopify-Topic") or "").strip().lower()[:64],
            account=(headers.get("X-Shopify-Shop-Domain") or "").strip().lower()[:255],
            event_id=(headers.get("X-Shopify-Event-Id") or "").strip()[:255] or None,
            api_version=(headers.get("X-Shopify-API-Version") or "").strip()[:32] or None,
            triggered_at=_header_time(headers.get("X-Shopify-Triggered-At")),
        )

    def topic_action(self, topic: str) -> TopicAction:
        return TopicAction.PROCESS if topic in ORDER_TOPICS else TopicAction.IGNORE

    def parse_order(self, payload: Any) -> OrderData:
        return parse_order(payload)

    def parse_event(self, topic: str, payload: Any) -> OrderData | OrderReference:
        if topic == ORDER_EDIT_TOPIC:
            return OrderReference(
                external_id=edited_order_id(payload),
                note="order edit recorded; the edited order arrives as orders/updated",
            )
        return parse_order(payload)


def sign(secret: str | bytes, raw_body: bytes) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify would send for this body."""
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, raw_body, hashlib.sha256).digest()).decode()


def signature_matches(keys: Sequence[bytes], raw_body: bytes, given: str) -> bool:
    """Constant-time check of `given` against the body signed with each key (no early exit)."""
    given_bytes = given.encode("ascii", errors="replace")
    ok = False
    for key in keys:
        expected = base64.b64encode(hmac.new(key, raw_body, hashlib.sha256).digest())
        ok |= hmac.compare_digest(expected, given_bytes)
    return ok


def edited_order_id(payload: Any) -> str:
    """The order an `orders/edited` payload (an `order_edit`, not an order) is about."""
    edit = payload.get("order_edit") if isinstance(payload, dict) else None
    if not isinstance(edit, dict) or edit.get("order_id") in (None, ""):
        raise PayloadInvalid("orders/edited payload has no order_edit.order_id")
    return _ident(edit["order_id"], "order_edit.order_id")


def parse_order(payload: Any) -> OrderData:
    """Normalize a Shopify REST order (as sent with `orders/*` webhooks)."""
    if not isinstance(payload, dict):
        raise PayloadInvalid(f"order payload is a JSON {type(payload).__name__}, not an object")
    placed_at = _time(payload, "created_at", required=True)
    assert placed_at is not None
    updated_at = _time(payload, "updated_at") or placed_at
    raw_lines = payload.get("line_items")
    if not isinstance(raw_lines, list):
        raise PayloadInvalid("line_items is missing or not a list")
    currency = payload.get("currency")
    if not isinstance(currency, str) or len(currency.strip()) != 3:
        raise PayloadInvalid(f"currency {currency!r} is not a 3-letter code")
    external_id = _ident(payload.get("id"), "id")
    number = payload.get("name") or payload.get("order_number") or external_id
    return OrderData(
        external_id=external_id,
        number=str(number)[:64],
        currency=currency.strip().upper(),
        total_price=_required_money(payload, "total_price"),
        subtotal_price=_money(payload, "subtotal_price"),
        total_discounts=_money(payload, "total_discounts"),
        total_tax=_money(payload, "total_tax"),
        total_shipping=_shipping_total(payload),
        placed_at=placed_at,
        source_updated_at=updated_at,
        financial_status=_text(payload.get("financial_status"), 32),
        fulfillment_status=_text(payload.get("fulfillment_status"), 32),
        cancelled_at=_time(payload, "cancelled_at"),
        cancel_reason=_text(payload.get("cancel_reason"), 64),
        test=bool(payload.get("test", False)),
        customer=_customer(payload),
        shipping_address=_address(payload.get("shipping_address")),
        note=_text(payload.get("note"), 10_000),
        lines=tuple(_line(item, i) for i, item in enumerate(raw_lines)),
    )


def _line(item: Any, index: int) -> LineData:
    where = f"line_items[{index}]"
    if not isinstance(item, dict):
        raise PayloadInvalid(f"{where} is not an object")
    # current_quantity is what is left after order edits and removals; older API versions
    # only send quantity.
    qty_field = "current_quantity" if item.get("current_quantity") is not None else "quantity"
    quantity = item.get(qty_field)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise PayloadInvalid(f"{where}.{qty_field}: {quantity!r} is not a whole number >= 0")
    allocations = item.get("discount_allocations")
    if isinstance(allocations, list) and allocations:
        discount = sum(
            (_amount(a.get("amount"), f"{where}.discount_allocations[{k}].amount")
             for k, a in enumerate(allocations) if isinstance(a, dict)),
            Decimal("0"),
        )
    else:
        given = _money(item, "total_discount", where=where)
        discount = Decimal("0") if given is None else given
    title = item.get("title") or item.get("name")
    if not isinstance(title, str) or not title.strip():
        raise PayloadInvalid(f"{where}.title is missing")
    return LineData(
        external_id=_ident(item.get("id"), f"{where}.id"),
        title=_text(title, 512) or "(untitled)",
        quantity=quantity,
        price=_required_money(item, "price", where=where),
        total_discount=discount,
        sku=_text(item.get("sku"), 255),
        variant_title=_text(item.get("variant_title"), 255),
        vendor=_text(item.get("vendor"), 255),
        product_id=_optional_ident(item.get("product_id")),
        variant_id=_optional_ident(item.get("variant_id")),
        requires_shipping=bool(item.get("requires_shipping", True)),
        gift_card=bool(item.get("gift_card", False)),
    )


def _customer(payload: dict[str, Any]) -> Customer | None:
    raw = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    assert isinstance(raw, dict)
    email = _text(payload.get("email") or payload.get("contact_email") or raw.get("email"), 255)
    name = " ".join(
        p for p in (_text(raw.get("first_name"), 120), _text(raw.get("last_name"), 120)) if p
    ) or None
    phone = _text(payload.get("phone") or raw.get("phone"), 64)
    if not (email or name or phone):
        return None
    return Customer(email=email, name=name, phone=phone)


def _address(raw: Any) -> Address | None:
    if not isinstance(raw, dict):
        return None
    name = _text(raw.get("name"), 255) or " ".join(
        p for p in (_text(raw.get("first_name"), 120), _text(raw.get("last_name"), 120)) if p
    ) or None
    return Address(
        name=name,
        company=_text(raw.get("company"), 255),
        address1=_text(raw.get("address1"), 255),
        address2=_text(raw.get("address2"), 255),
        city=_text(raw.get("city"), 255),
        province=_text(raw.get("province"), 255),
        province_code=_text(raw.get("province_code"), 16),
        zip=_text(raw.get("zip"), 32),
        country=_text(raw.get("country"), 255),
        country_code=(_text(raw.get("country_code"), 2) or "").upper() or None,
        phone=_text(raw.get("phone"), 64),
    )


def _shipping_total(payload: dict[str, Any]) -> Decimal | None:
    price_set = payload.get("total_shipping_price_set")
    if isinstance(price_set, dict) and isinstance(price_set.get("shop_money"), dict):
        return _amount(price_set["shop_money"].get("amount"),
                       "total_shipping_price_set.shop_money.amount")
    lines = payload.get("shipping_lines")
    if isinstance(lines, list) and lines:
        return sum(
            (_amount(s.get("price"), f"shipping_lines[{i}].price")
             for i, s in enumerate(lines) if isinstance(s, dict)),
            Decimal("0"),
        )
    return None


def _money(obj: dict[str, Any], key: str, *, required: bool = False,
           where: str = "") -> Decimal | None:
    name = f"{where}.{key}" if where else key
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise PayloadInvalid(f"{name} is missing")
        return None
    return _amount(value, name)


def _required_money(obj: dict[str, Any], key: str, *, where: str = "") -> Decimal:
    value = _money(obj, key, required=True, where=where)
    assert value is not None  # required=True raises instead
    return value


def _amount(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PayloadInvalid(f"{name}: {value!r} is not an amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise PayloadInvalid(f"{name}: {value!r} is not an amount") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e13"):
        raise PayloadInvalid(f"{name}: {value!r} is not a plausible amount")
    return amount


def _time(obj: dict[str, Any], key: str, *, required: bool = False) -> datetime | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise PayloadInvalid(f"{key} is missing")
        return None
    if not isinstance(value, str):
        raise PayloadInvalid(f"{key}: {value!r} is not a date-time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadInvalid(f"{key}: {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise PayloadInvalid(f"{key}: {value!r} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PayloadInvalid(f"{key}: {value!r} is out of range") from None


def _header_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _ident(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise PayloadInvalid(f"{name}: {value!r} is not an id")
    text = str(value).strip()
    if len(text) > 64:
        raise PayloadInvalid(f"{name}: id longer than 64 characters")
    return text


def _optional_ident(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    return str(value)[:64] if isinstance(value, int | str) else None


# Control characters (other than tab and newlines) have no place in an order and cannot be
# written into XML 1.0, so they are dropped on the way in rather than failing a document later.
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13)) | {0x7F: None}


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).translate(_CONTROL).strip()
    return text[:limit] or None
