"""The demo shop: places a realistic order every few seconds and tells OrderHub the way Shopify
would, with a signed `orders/create` webhook to `/webhooks/demo`. Run by `deploy/demo.py`:

    python -m deploy.demo_shop --demo-dir var/demo --url http://127.0.0.1:8000 [--interval 5]

Every order is first written to `<demo dir>/orders/<id>.json` (what the shop's API returns, read
by `orders sync` through `DemoApi`). Now and then a webhook is "lost" on purpose (never sent:
`orders sync` finds the order) or sent twice (OrderHub answers `duplicate`). It also prints the
fulfillments OrderHub pushes back to the shop (`<demo dir>/fulfillments.jsonl`).
The webhook secret comes from DEMO_WEBHOOK_SECRET. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # `python deploy/demo_shop.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.channels.demo import SHOP_DOMAIN  # noqa: E402
from deploy.demo_catalog import PRODUCTS, DemoPaths, Product, say  # noqa: E402

FIRST_NUMBER = 1001
LOSE_EVERY = 7        # every 7th order's webhook never arrives: `orders sync` must find it
DUPLICATE_EVERY = 5   # every 5th is delivered twice, as Shopify does after a slow answer
CUSTOMERS = (  # first, last, street, city, province, code, zip, country, country code
    ("Maria", "Schmidt", "1200 SW Alder St", "Portland", "Oregon", "OR", "97205",
     "United States", "US"),
    ("Aiko", "Tanaka", "88 Spring Garden Rd", "Halifax", "Nova Scotia", "NS", "B3H 1A1",
     "Canada", "CA"),
    ("Jürgen", "Müller", "Hauptstraße 5", "Köln", "Nordrhein-Westfalen", "NW", "50667",
     "Germany", "DE"),
    ("Kwame", "Okafor", "415 Congress Ave", "Austin", "Texas", "TX", "78701",
     "United States", "US"),
    ("Sofia", "Rossi", "27 Pine St", "Burlington", "Vermont", "VT", "05401",
     "United States", "US"),
    ("Ingrid", "Larsen", "9 Williamson St", "Madison", "Wisconsin", "WI", "53703",
     "United States", "US"),
)
NOTES = ("Please leave at the back door.", "Gift, no invoice please.", "Call before delivery.",
         None, None)


def money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def make_order(number: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    """A Shopify REST order (the shape `orders/create` carries) with 1-3 of the demo's products."""
    first, last, street, city, province, code, zip_code, country, cc = rng.choice(CUSTOMERS)
    order_id = 5_900_000_000_000 + number
    picked: list[Product] = rng.sample(PRODUCTS, rng.choice((1, 2, 2, 3)))
    lines: list[dict[str, Any]] = []
    items_total = Decimal(0)
    for k, product in enumerate(picked):
        quantity = rng.choice((1, 1, 2, 3))
        line_id = 15_000_000_000_000 + number * 10 + k
        items_total += product.price * quantity
        lines.append({
            "id": line_id, "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
            "title": product.title, "variant_title": product.variant,
            "name": f"{product.title} - {product.variant}" if product.variant else product.title,
            "sku": product.sku, "vendor": product.vendor, "quantity": quantity,
            "current_quantity": quantity, "fulfillable_quantity": quantity,
            "price": money(product.price), "total_discount": "0.00", "grams": product.grams,
            "product_id": 8_100_000_000_000 + PRODUCTS.index(product),
            "variant_id": 44_500_000_000_000 + PRODUCTS.index(product),
            "requires_shipping": True, "taxable": True, "gift_card": False,
            "fulfillment_service": "manual", "fulfillment_status": None, "properties": [],
            "tax_lines": [{"price": money(product.price * quantity * Decimal("0.05")),
                           "rate": 0.05, "title": "Sales tax"}],
            "discount_allocations": [],
        })
    shipping = Decimal("0.00") if items_total >= 100 else Decimal("6.90")
    tax = (items_total * Decimal("0.05")).quantize(Decimal("0.01"))
    total = items_total + tax + shipping
    stamp = now.astimezone().isoformat(timespec="seconds")
    email = f"{first}.{last}.{number}@example.com".lower().replace("ü", "ue")
    address = {"first_name": first, "last_name": last, "name": f"{first} {last}",
               "address1": street, "address2": None, "city": city, "province": province,
               "province_code": code, "zip": zip_code, "country": country,
               "country_code": cc, "company": None, "phone": "+1 555 0100"}
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{number}", "number": number - 1000, "order_number": number,
        "email": email, "contact_email": email, "phone": None,
        "created_at": stamp, "processed_at": stamp, "updated_at": stamp,
        "currency": "USD", "presentment_currency": "USD",
        "financial_status": rng.choice(("paid", "paid", "paid", "pending")),
        "fulfillment_status": None, "confirmed": True, "test": False,
        "cancelled_at": None, "cancel_reason": None, "closed_at": None,
        "source_name": "web", "tags": "demo", "note": rng.choice(NOTES), "note_attributes": [],
        "customer_locale": "en-US", "taxes_included": False,
        "total_line_items_price": money(items_total), "subtotal_price": money(items_total),
        "current_subtotal_price": money(items_total), "total_discounts": "0.00",
        "current_total_discounts": "0.00", "total_tax": money(tax),
        "current_total_tax": money(tax), "total_price": money(total),
        "current_total_price": money(total), "total_outstanding": "0.00",
        "total_weight": sum(p.grams for p in picked),
        "total_shipping_price_set": {
            "shop_money": {"amount": money(shipping), "currency_code": "USD"},
            "presentment_money": {"amount": money(shipping), "currency_code": "USD"}},
        "shipping_lines": [{"id": 4_700_000_000 + number, "code": "Standard",
                            "title": "Standard Shipping", "price": money(shipping),
                            "source": "shopify", "tax_lines": [],
                            "discount_allocations": []}],
        "customer": {"id": 7_000_000_000_000 + CUSTOMERS.index(
                         (first, last, street, city, province, code, zip_code, country, cc)),
                     "email": email, "first_name": first, "last_name": last,
                     "phone": None, "default_address": address},
        "billing_address": address, "shipping_address": address,
        "line_items": lines, "fulfillments": [], "refunds": [],
        "discount_codes": [], "discount_applications": [],
    }


def sign(secret: str, body: bytes) -> str:
    """Shopify's `X-Shopify-Hmac-Sha256`: base64(HMAC-SHA256(secret, raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliver(url: str, secret: str, body: bytes, webhook_id: str) -> str:
    """POST one signed `orders/create` delivery; returns what OrderHub answered."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "OrderHub-Demo-Shop",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign(secret, body),
        "X-Shopify-Shop-Domain": SHOP_DOMAIN,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    request = urllib.request.Request(  # noqa: S310 (the loopback URL demo.py gave us)
        f"{url}/webhooks/demo", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            answer = json.loads(response.read() or b"{}")
            return f"{response.status} {answer.get('status', '')}".strip()
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read()[:200].decode(errors='replace')}"


class Shop:
    def __init__(self, paths: DemoPaths, url: str, secret: str, seed: int | None) -> None:
        self.paths = paths
        self.url = url
        self.secret = secret
        self.rng = random.Random(seed)  # noqa: S311 (made-up orders, not secrets)
        self.fulfillments_read = 0         # bytes of fulfillments.jsonl already shown
        paths.orders.mkdir(parents=True, exist_ok=True)
        if paths.fulfillments.exists():
            self.fulfillments_read = paths.fulfillments.stat().st_size

    def place_order(self) -> None:
        number = FIRST_NUMBER + len(list(self.paths.orders.glob("*.json")))
        order = make_order(number, self.rng, datetime.now(UTC))
        body = json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode()
        path = self.paths.orders / f"{order['id']}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, path)
        what = ", ".join(f"{line['quantity']} x {line['sku']}" for line in order["line_items"])
        if number % LOSE_EVERY == 0:
            say("shop", f"order {order['name']} ({what}): webhook LOST on purpose, "
                        "`orders sync` will find it")
            return
        webhook_id = str(uuid.uuid4())
        say("shop", f"order {order['name']} ({what}) -> webhook {self._send(body, webhook_id)}")
        if number % DUPLICATE_EVERY == 0:
            say("shop", f"order {order['name']} delivered again (same webhook id) -> "
                        f"{self._send(body, webhook_id)}")

    def _send(self, body: bytes, webhook_id: str) -> str:
        try:
            return deliver(self.url, self.secret, body, webhook_id)
        except OSError as exc:   # OrderHub down: the order is in the shop, `orders sync` reads it
            return f"failed ({exc})"

    def show_fulfillments(self) -> None:
        if not self.paths.fulfillments.exists():
            return
        with open(self.paths.fulfillments, "rb") as f:
            f.seek(self.fulfillments_read)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]
        self.fulfillments_read += len(complete)
        for raw in complete.splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            order = self._order_name(str(record.get("order_id")))
            units = sum(int(line.get("quantity", 0)) for line in record.get("line_items", []))
            say("shop", f"order {order}: fulfillment received, {units} unit(s) via "
                        f"{record.get('tracking_company')} {record.get('tracking_number')}")

    def _order_name(self, order_id: str) -> str:
        try:
            return str(json.loads((self.paths.orders / f"{order_id}.json").read_bytes())["name"])
        except (OSError, ValueError, KeyError):
            return f"id {order_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo shop (orders in, fulfillments back).")
    parser.add_argument("--demo-dir", type=Path, required=True)
    parser.add_argument("--url", required=True, help="OrderHub, e.g. http://127.0.0.1:8000")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between orders")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    secret = os.environ.get("DEMO_WEBHOOK_SECRET", "")
    if not secret:
        print("demo_shop: DEMO_WEBHOOK_SECRET is not set", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    shop = Shop(DemoPaths(args.demo_dir.resolve()), args.url.rstrip("/"), secret, args.seed)
    next_order = time.monotonic()
    while not stop.is_set():
        if time.monotonic() >= next_order:
            shop.place_order()
            next_order = time.monotonic() + args.interval * shop.rng.uniform(0.7, 1.3)
        shop.show_fulfillments()
        stop.wait(min(0.5, args.interval / 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
