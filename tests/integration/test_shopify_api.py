"""The Shopify Admin API client against Shopify's documented answers, over `responses` (no
network): fulfillments with tracking, rate limits, errors, and orders for reconcile."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from app.channels.base import ChannelApi, ChannelApiError, PushResult, ShipmentPush
from app.channels.shopify_api import ShopifyAdmin, ShopifyApiError, Tracking
from tests.unit.helpers import raw_fixture

SHOP = "garden-goods.myshopify.com"
TOKEN = "shpat_0123456789abcdef0123456789abcdef"
BASE = f"https://{SHOP}/admin/api/2026-10"
GRAPHQL = f"{BASE}/graphql.json"
ORDERS = f"{BASE}/orders.json"
ORDER_ID = "5813441806523"              # tests/fixtures/shopify/orders_create.json
ORDER_GID = f"gid://shopify/Order/{ORDER_ID}"
BED, SOIL, TROWEL = "14511244968123", "14511244968124", "14511244968125"   # line_items[].id
WAREHOUSE, STORE = "gid://shopify/Location/24826418", "gid://shopify/Location/60345401"
UPS = Tracking(company="UPS", number="1Z999AA10123456784",
               url="https://www.ups.com/track?tracknum=1Z999AA10123456784")


class FakeClock:
    """Monotonic time that only moves when the client sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeAdminGraphQL:
    """Shopify's graphql.json: answers queued per operation name, requests recorded."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.queued: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = {}
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        mock.add_callback(responses.POST, GRAPHQL, callback=self._answer)

    def reply(self, op: str, body: dict[str, Any], *, status: int = 200,
              headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.queued.setdefault(op, []).extend([(status, body, headers or {})] * times)

    def calls(self, op: str) -> list[dict[str, Any]]:
        return [variables for name, variables, _ in self.requests if name == op]

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        match = re.search(r"(?:query|mutation)\s+(\w+)", body["query"])
        assert match, body["query"]
        op = match[1]
        self.requests.append((op, body["variables"], dict(request.headers)))
        queue = self.queued.get(op)
        assert queue, f"unexpected {op} request: {body['variables']}"
        status, answer, headers = queue.pop(0)
        return status, {"Content-Type": "application/json", **headers}, json.dumps(answer)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def shopify(mock: responses.RequestsMock) -> FakeAdminGraphQL:
    return FakeAdminGraphQL(mock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def admin(clock: FakeClock) -> ShopifyAdmin:
    return ShopifyAdmin(SHOP, TOKEN, api_version="2026-10", clock=clock, sleep=clock.sleep)


# ---------------------------------------------------------------------- Shopify-shaped answers

def cost(requested: int = 12, *, available: float = 1988, maximum: float = 2000,
         restore: float = 100, actual: int | None = 12) -> dict[str, Any]:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                     "throttleStatus": {"maximumAvailable": maximum,
                                        "currentlyAvailable": available,
                                        "restoreRate": restore}}}


def fo_line(fo_line_id: int, line_item_id: str, sku: str, *, remaining: int,
            total: int | None = None) -> dict[str, Any]:
    return {"id": f"gid://shopify/FulfillmentOrderLineItem/{fo_line_id}",
            "remainingQuantity": remaining, "totalQuantity": remaining if total is None else total,
            "lineItem": {"id": f"gid://shopify/LineItem/{line_item_id}", "sku": sku}}


def fo(fo_id: int, status: str, location: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"gid://shopify/FulfillmentOrder/{fo_id}", "status": status,
            "assignedLocation": {"location": {"id": location}},
            "lineItems": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": lines}}


def fulfillment_orders(*nodes: dict[str, Any], **cost_args: Any) -> dict[str, Any]:
    return {"data": {"order": {"id": ORDER_GID, "fulfillmentOrders": {
                "pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": list(nodes)}}},
            "extensions": cost(**cost_args)}


def fulfillments(*existing: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"order": {"id": ORDER_GID, "fulfillments": list(existing)}},
            "extensions": cost()}


def created(fulfillment_id: int) -> dict[str, Any]:
    return {"data": {"fulfillmentCreate": {
                "fulfillment": {"id": f"gid://shopify/Fulfillment/{fulfillment_id}",
                                "status": "SUCCESS"},
                "userErrors": []}},
            "extensions": cost(10)}


def refused(message: str) -> dict[str, Any]:
    return {"data": {"fulfillmentCreate": {"fulfillment": None, "userErrors": [
                {"field": ["fulfillment"], "message": message}]}},
            "extensions": cost(10)}


def throttled(requested: int, available: float, restore: float = 100) -> dict[str, Any]:
    return {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
            "extensions": cost(requested, available=available, restore=restore, actual=None)}


OPEN_AT_WAREHOUSE = fo(1046000778, "OPEN", WAREHOUSE, [
    fo_line(1058737482, BED, "AG-BED-CED-L", remaining=2),
    fo_line(1058737483, SOIL, "GS-SOIL-40", remaining=1),
    fo_line(1058737484, TROWEL, "AG-TRWL", remaining=1),
])


# ---------------------------------------------------------------------- fulfillment

def test_fulfillment_for_some_lines_is_one_fulfillment_create(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))
    shopify.reply("OrderHubFulfillmentCreate", created(255858046))

    result = admin.create_fulfillment(ORDER_ID, [(BED, 1), (TROWEL, 1)], UPS,
                                      notify_customer=False)

    assert shopify.calls("OrderHubFulfillmentOrders")[0]["id"] == ORDER_GID
    assert shopify.calls("OrderHubFulfillmentCreate") == [{"fulfillment": {
        "lineItemsByFulfillmentOrder": [{
            "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1046000778",
            "fulfillmentOrderLineItems": [
                {"id": "gid://shopify/FulfillmentOrderLineItem/1058737482", "quantity": 1},
                {"id": "gid://shopify/FulfillmentOrderLineItem/1058737484", "quantity": 1},
            ]}],
        "notifyCustomer": False,
        "trackingInfo": {"company": "UPS", "number": "1Z999AA10123456784",
                         "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"},
    }}]
    assert result.fulfillment_ids == ("gid://shopify/Fulfillment/255858046",)
    assert result.fulfilled == ((BED, 1), (TROWEL, 1))
    assert not result.already_done
    assert (result.excess, result.unknown) == ((), ())
    headers = shopify.requests[0][2]
    assert headers["X-Shopify-Access-Token"] == TOKEN
    assert headers["Content-Type"] == "application/json"


def test_notify_customer_defaults_to_the_setting(clock: FakeClock,
                                                 shopify: FakeAdminGraphQL) -> None:
    admin = ShopifyAdmin(SHOP, TOKEN, notify_customer=True, clock=clock, sleep=clock.sleep)
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))
    shopify.reply("OrderHubFulfillmentCreate", created(255858046))

    admin.create_fulfillment(ORDER_ID, [(SOIL, 1)], Tracking(company="DHL Express"))

    sent = shopify.calls("OrderHubFulfillmentCreate")[0]["fulfillment"]
    assert sent["notifyCustomer"] is True
    assert sent["trackingInfo"] == {"company": "DHL Express"}
    # Without a tracking number there is nothing to recognise an earlier push by.
    assert shopify.calls("OrderHubOrderFulfillments") == []


def test_lines_at_two_locations_are_two_fulfillment_creates(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "OPEN", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                   remaining=2)]),
        fo(1046000779, "IN_PROGRESS", STORE, [fo_line(1058737483, SOIL, "GS-SOIL-40",
                                                      remaining=1)]),
    ))
    shopify.reply("OrderHubFulfillmentCreate", created(255858046))
    shopify.reply("OrderHubFulfillmentCreate", created(255858047))

    result = admin.create_fulfillment(ORDER_ID, [(BED, 2), (SOIL, 1)], UPS, notify_customer=True)

    sent = [c["fulfillment"] for c in shopify.calls("OrderHubFulfillmentCreate")]
    assert [s["lineItemsByFulfillmentOrder"] for s in sent] == [
        [{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1046000778",
          "fulfillmentOrderLineItems": [
              {"id": "gid://shopify/FulfillmentOrderLineItem/1058737482", "quantity": 2}]}],
        [{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1046000779",
          "fulfillmentOrderLineItems": [
              {"id": "gid://shopify/FulfillmentOrderLineItem/1058737483", "quantity": 1}]}],
    ]
    assert all(s["notifyCustomer"] is True and s["trackingInfo"]["number"] == UPS.number
               for s in sent)
    assert result.fulfillment_ids == ("gid://shopify/Fulfillment/255858046",
                                      "gid://shopify/Fulfillment/255858047")
    assert result.fulfilled == ((BED, 2), (SOIL, 1))


def test_already_fulfilled_lines_send_no_mutation(admin: ShopifyAdmin,
                                                  shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "CLOSED", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                     remaining=0, total=2)]),
    ))

    result = admin.create_fulfillment(ORDER_ID, [(BED, 2)], UPS)

    assert result.already_done
    assert result.fulfillment_ids == ()
    assert result.excess == ((BED, 2),)
    assert shopify.calls("OrderHubFulfillmentCreate") == []


def test_a_retried_push_finds_its_own_fulfillment_by_tracking_number(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    # The first push created the fulfillment but its answer was lost; 1 bed is still open.
    shopify.reply("OrderHubOrderFulfillments", fulfillments({
        "id": "gid://shopify/Fulfillment/255858046", "status": "SUCCESS",
        "trackingInfo": [{"number": "1z999aa10123456784 "}],
        "fulfillmentLineItems": {"nodes": [
            {"quantity": 1, "lineItem": {"id": f"gid://shopify/LineItem/{BED}"}}]},
    }))
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "IN_PROGRESS", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                          remaining=1, total=2)]),
    ))

    result = admin.create_fulfillment(ORDER_ID, [(BED, 1)], UPS)

    assert shopify.calls("OrderHubFulfillmentCreate") == []
    assert result.already_done
    assert result.already_shipped == ((BED, 1),)


def test_more_than_remains_fulfils_what_remains_and_reports_the_excess(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "IN_PROGRESS", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                          remaining=1, total=2)]),
    ))
    shopify.reply("OrderHubFulfillmentCreate", created(255858046))

    result = admin.create_fulfillment(ORDER_ID, [(BED, 3)], UPS)

    items = shopify.calls("OrderHubFulfillmentCreate")[0]["fulfillment"][
        "lineItemsByFulfillmentOrder"][0]["fulfillmentOrderLineItems"]
    assert items == [{"id": "gid://shopify/FulfillmentOrderLineItem/1058737482", "quantity": 1}]
    assert result.fulfilled == ((BED, 1),)
    assert result.excess == ((BED, 2),)
    assert not result.already_done


def test_user_error_because_fulfilled_meanwhile_counts_as_done(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))
    shopify.reply("OrderHubFulfillmentCreate",
                  refused("Invalid fulfillment order line item quantity requested."))
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "CLOSED", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                     remaining=0, total=2)]),
    ))

    result = admin.create_fulfillment(ORDER_ID, [(BED, 2)], UPS)

    assert result.already_done
    assert result.fulfillment_ids == ()
    assert len(shopify.calls("OrderHubFulfillmentCreate")) == 1


def test_user_errors_are_not_retryable_and_say_why(admin: ShopifyAdmin,
                                                   shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE), times=2)
    shopify.reply("OrderHubFulfillmentCreate",
                  refused("Tracking url is not a valid URL"))

    with pytest.raises(ChannelApiError) as caught:
        admin.create_fulfillment(ORDER_ID, [(BED, 1)], UPS)

    assert not caught.value.retryable
    assert "Tracking url is not a valid URL" in str(caught.value)
    assert len(shopify.calls("OrderHubFulfillmentCreate")) == 1


def test_lines_on_hold_are_retryable(admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "ON_HOLD", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                      remaining=2)]),
    ))

    with pytest.raises(ChannelApiError, match="ON_HOLD") as caught:
        admin.create_fulfillment(ORDER_ID, [(BED, 2)], UPS)

    assert caught.value.retryable
    assert shopify.calls("OrderHubFulfillmentCreate") == []


def test_a_hold_on_some_lines_holds_back_the_whole_push(admin: ShopifyAdmin,
                                                        shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "OPEN", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                   remaining=2)]),
        fo(1046000779, "SCHEDULED", STORE, [fo_line(1058737483, SOIL, "GS-SOIL-40",
                                                    remaining=1)]),
    ))

    with pytest.raises(ChannelApiError, match=f"{SOIL} x1 \\(SCHEDULED\\)") as caught:
        admin.create_fulfillment(ORDER_ID, [(BED, 2), (SOIL, 1)], UPS)

    assert caught.value.retryable
    assert shopify.calls("OrderHubFulfillmentCreate") == []


def test_lines_on_no_fulfillment_order_are_not_retryable(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))

    with pytest.raises(ChannelApiError, match="999") as caught:
        admin.create_fulfillment(ORDER_ID, [("999", 1)], UPS)

    assert not caught.value.retryable
    # Without the scope Shopify answers with no fulfillment orders rather than an error.
    assert "read_merchant_managed_fulfillment_orders" in str(caught.value)


def test_push_fulfillment_speaks_the_channel_protocol(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000778, "OPEN", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                   remaining=1, total=2)]),
    ))
    shopify.reply("OrderHubFulfillmentCreate", created(255858046))

    api: ChannelApi = admin   # mypy checks that the client fits the protocol
    result = api.push_fulfillment(ORDER_ID, ShipmentPush(
        lines=((BED, 2), ("999", 1)), carrier="UPS", tracking_number="1Z999AA10123456784",
        tracking_url=None))

    assert result == PushResult(
        reference="gid://shopify/Fulfillment/255858046", already_done=False,
        note=f"no longer open on Shopify: {BED} x1; on no Shopify fulfillment order: 999")
    sent = shopify.calls("OrderHubFulfillmentCreate")[0]["fulfillment"]
    assert sent["trackingInfo"] == {"company": "UPS", "number": "1Z999AA10123456784"}
    assert sent["notifyCustomer"] is True


def test_unknown_order_is_not_retryable(admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubFulfillmentOrders", {"data": {"order": None}, "extensions": cost(3)})

    with pytest.raises(ChannelApiError, match=ORDER_GID) as caught:
        admin.fulfillment_orders(ORDER_ID)

    assert not caught.value.retryable


def test_fulfillment_orders_follow_both_page_levels(admin: ShopifyAdmin,
                                                    shopify: FakeAdminGraphQL) -> None:
    first = fo(1046000778, "OPEN", WAREHOUSE, [fo_line(1058737482, BED, "AG-BED-CED-L",
                                                       remaining=2)])
    first["lineItems"]["pageInfo"] = {"hasNextPage": True, "endCursor": "eyJsYXN0X2lkIjoxfQ=="}
    page_one = fulfillment_orders(first)
    page_one["data"]["order"]["fulfillmentOrders"]["pageInfo"] = {
        "hasNextPage": True, "endCursor": "eyJsYXN0X2lkIjoxMDQ2MDAwNzc4fQ=="}
    shopify.reply("OrderHubFulfillmentOrders", page_one)
    shopify.reply("OrderHubFulfillmentOrderLines", {"data": {"node": {"lineItems": {
        "pageInfo": {"hasNextPage": False, "endCursor": "eyJsYXN0X2lkIjoyfQ=="},
        "nodes": [fo_line(1058737483, SOIL, "GS-SOIL-40", remaining=1)]}}},
        "extensions": cost(5)})
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(
        fo(1046000779, "CLOSED", STORE, [fo_line(1058737484, TROWEL, "AG-TRWL", remaining=0,
                                                 total=1)])))

    found = admin.fulfillment_orders(ORDER_ID)

    assert [(f.id, f.status, f.location_id) for f in found] == [
        ("gid://shopify/FulfillmentOrder/1046000778", "OPEN", WAREHOUSE),
        ("gid://shopify/FulfillmentOrder/1046000779", "CLOSED", STORE),
    ]
    assert [(line.line_item_id, line.sku, line.remaining_quantity) for line in found[0].lines] \
        == [(BED, "AG-BED-CED-L", 2), (SOIL, "GS-SOIL-40", 1)]
    assert shopify.calls("OrderHubFulfillmentOrderLines") == [
        {"id": "gid://shopify/FulfillmentOrder/1046000778", "after": "eyJsYXN0X2lkIjoxfQ=="}]
    assert shopify.calls("OrderHubFulfillmentOrders")[1]["after"] == \
        "eyJsYXN0X2lkIjoxMDQ2MDAwNzc4fQ=="


# ---------------------------------------------------------------------- GraphQL rate limits

def test_throttled_is_retried_after_the_bucket_refills(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL, clock: FakeClock) -> None:
    shopify.reply("OrderHubFulfillmentOrders", throttled(requested=252, available=12))
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))

    found = admin.fulfillment_orders(ORDER_ID)

    assert len(found) == 1
    assert len(shopify.calls("OrderHubFulfillmentOrders")) == 2
    # (requestedQueryCost 252 - currentlyAvailable 12) / restoreRate 100
    assert clock.sleeps == [pytest.approx(2.4)]


def test_throttled_backs_off_at_least_exponentially(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL, clock: FakeClock) -> None:
    # Shopify says the bucket is nearly full, yet throttles: another client shares it.
    shopify.reply("OrderHubFulfillmentOrders", throttled(requested=10, available=1900), times=2)
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))

    admin.fulfillment_orders(ORDER_ID)

    assert clock.sleeps == [1.0, 2.0]


def test_throttled_too_often_is_a_retryable_error(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL, clock: FakeClock) -> None:
    shopify.reply("OrderHubFulfillmentOrders", throttled(requested=752, available=0, restore=50),
                  times=5)

    with pytest.raises(ChannelApiError, match="throttled") as caught:
        admin.fulfillment_orders(ORDER_ID)

    assert caught.value.retryable
    assert len(shopify.calls("OrderHubFulfillmentOrders")) == 5
    # 752 points at 50/s: 15.04 s each time, more than the backoff floor.
    assert clock.sleeps == [pytest.approx(15.04)] * 4


def test_graphql_429_honours_retry_after(admin: ShopifyAdmin, shopify: FakeAdminGraphQL,
                                        clock: FakeClock) -> None:
    shopify.reply("OrderHubFulfillmentOrders", {"errors": "Too many requests"}, status=429,
                  headers={"Retry-After": "1.5"})
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))

    assert len(admin.fulfillment_orders(ORDER_ID)) == 1
    assert clock.sleeps == [1.5]


def test_a_low_bucket_is_waited_for_before_the_request(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL, clock: FakeClock) -> None:
    shopify.reply("OrderHubFulfillmentOrders",
                  fulfillment_orders(OPEN_AT_WAREHOUSE, requested=60, available=10), times=2)

    admin.fulfillment_orders(ORDER_ID)
    assert clock.sleeps == []
    admin.fulfillment_orders(ORDER_ID)

    # The query cost 60 last time; 10 are left, 100 come back a second.
    assert clock.sleeps == [pytest.approx(0.5)]


def test_time_passed_refills_the_bucket(admin: ShopifyAdmin, shopify: FakeAdminGraphQL,
                                        clock: FakeClock) -> None:
    shopify.reply("OrderHubFulfillmentOrders",
                  fulfillment_orders(OPEN_AT_WAREHOUSE, requested=60, available=10), times=2)

    admin.fulfillment_orders(ORDER_ID)
    clock.now += 1.0
    admin.fulfillment_orders(ORDER_ID)

    assert clock.sleeps == []


# ---------------------------------------------------------------------- errors

def test_server_errors_are_retryable_after_bounded_retries(
        admin: ShopifyAdmin, mock: responses.RequestsMock, clock: FakeClock) -> None:
    mock.add(responses.POST, GRAPHQL, status=503, body="<html>Service Unavailable</html>")

    with pytest.raises(ChannelApiError, match="503") as caught:
        admin.fulfillment_orders(ORDER_ID)

    assert caught.value.retryable
    assert len(mock.calls) == 5
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_a_mutation_is_not_repeated_after_a_server_error(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL, clock: FakeClock) -> None:
    shopify.reply("OrderHubOrderFulfillments", fulfillments())
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))
    shopify.reply("OrderHubFulfillmentCreate",
                  {"errors": [{"message": "Internal error. Looks like something went wrong"}]},
                  status=500)

    with pytest.raises(ChannelApiError) as caught:
        admin.create_fulfillment(ORDER_ID, [(BED, 1)], UPS)

    # It may have been created: the caller retries the whole push, which looks first.
    assert caught.value.retryable
    assert len(shopify.calls("OrderHubFulfillmentCreate")) == 1


def test_connection_errors_are_retryable(admin: ShopifyAdmin, mock: responses.RequestsMock,
                                         clock: FakeClock) -> None:
    mock.add(responses.POST, GRAPHQL, body=requests.ConnectionError("Connection refused"))

    with pytest.raises(ChannelApiError, match="could not connect") as caught:
        admin.fulfillment_orders(ORDER_ID)

    assert caught.value.retryable
    assert len(mock.calls) == 5


def test_bad_token_is_not_retryable_and_never_shown(
        admin: ShopifyAdmin, mock: responses.RequestsMock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mock.add(responses.POST, GRAPHQL, status=401, json={
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})

    with pytest.raises(ShopifyApiError) as caught:
        admin.fulfillment_orders(ORDER_ID)

    message = str(caught.value)
    assert not caught.value.retryable
    assert caught.value.status == 401
    assert "SHOPIFY_ACCESS_TOKEN" in message and "401" in message
    assert "Invalid API key or access token" in message
    assert TOKEN not in message and TOKEN not in repr(admin) and TOKEN not in caplog.text
    assert len(mock.calls) == 1


def test_a_token_echoed_by_the_server_is_redacted(admin: ShopifyAdmin,
                                                  mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, GRAPHQL, status=400, json={"errors": f"bad header {TOKEN}"})

    with pytest.raises(ChannelApiError) as caught:
        admin.fulfillment_orders(ORDER_ID)

    assert TOKEN not in str(caught.value)
    assert "[redacted]" in str(caught.value)


def test_forbidden_names_the_missing_scope(admin: ShopifyAdmin,
                                           mock: responses.RequestsMock) -> None:
    mock.add(responses.GET, ORDERS, status=403, json={
        "errors": "[API] This action requires merchant approval for read_orders scope."})

    with pytest.raises(ChannelApiError) as caught:
        list(admin.orders_updated_since(datetime(2026, 11, 1, tzinfo=UTC)))

    assert not caught.value.retryable
    assert "read_orders" in str(caught.value)


def test_graphql_access_denied_names_the_missing_scope(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply("OrderHubFulfillmentOrders", {
        "errors": [{"message": "Access denied for fulfillmentOrders field. Required access: "
                               "`read_merchant_managed_fulfillment_orders` access scope.",
                    "locations": [{"line": 4, "column": 5}],
                    "path": ["order", "fulfillmentOrders"],
                    "extensions": {"code": "ACCESS_DENIED",
                                   "documentation": "https://shopify.dev/api/usage/access-scopes",
                                   "requiredAccess": "`read_merchant_managed_fulfillment_orders`"
                                                     " access scope."}}],
        "data": {"order": None}, "extensions": cost(3)})

    with pytest.raises(ChannelApiError) as caught:
        admin.fulfillment_orders(ORDER_ID)

    assert not caught.value.retryable
    assert "read_merchant_managed_fulfillment_orders" in str(caught.value)


def test_not_found_points_at_the_shop_and_version(admin: ShopifyAdmin,
                                                  mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, GRAPHQL, status=404, json={"errors": "Not Found"})

    with pytest.raises(ChannelApiError, match="SHOPIFY_SHOP_DOMAIN") as caught:
        admin.fulfillment_orders(ORDER_ID)

    assert not caught.value.retryable


class RecordingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[Any] = []

    def request(self, method: str, url: str, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        self.timeouts.append(kwargs.get("timeout"))
        return super().request(method, url, *args, **kwargs)


def test_every_request_has_connect_and_read_timeouts(clock: FakeClock,
                                                     shopify: FakeAdminGraphQL) -> None:
    session = RecordingSession()
    admin = ShopifyAdmin(SHOP, TOKEN, session=session, clock=clock, sleep=clock.sleep)
    shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))

    admin.fulfillment_orders(ORDER_ID)

    assert session.timeouts == [(5.0, 30.0)]


# ---------------------------------------------------------------------- reconcile over REST

def order_json(order_id: int, updated_at: str) -> dict[str, Any]:
    order: dict[str, Any] = json.loads(raw_fixture("orders_create.json"))
    order["id"] = order_id
    order["admin_graphql_api_id"] = f"gid://shopify/Order/{order_id}"
    order["updated_at"] = updated_at
    return order


def link(page_info: str, rel: str, host: str = SHOP) -> str:
    return (f"<https://{host}/admin/api/2026-10/orders.json?limit=250&page_info={page_info}>; "
            f'rel="{rel}"')


def test_orders_are_read_page_by_page_through_link_headers(
        admin: ShopifyAdmin, mock: responses.RequestsMock) -> None:
    pages = [
        [order_json(5813441806523, "2026-11-20T09:14:05-05:00"),
         order_json(5813441806524, "2026-11-20T10:00:00-05:00")],
        [order_json(5813441806525, "2026-11-20T11:30:00-05:00")],
        [order_json(5813441806526, "2026-11-21T08:00:00-05:00")],
    ]
    mock.add(responses.GET, ORDERS, json={"orders": pages[0]}, headers={
        "Link": link("eyJkaXJlY3Rpb24iOiJuZXh0IiwibGFzdF9pZCI6MX0", "next"),
        "X-Shopify-Shop-Api-Call-Limit": "1/40"})
    mock.add(responses.GET, ORDERS, json={"orders": pages[1]}, headers={
        "Link": link("eyJkaXJlY3Rpb24iOiJwcmV2IiwibGFzdF9pZCI6Mn0", "previous") + ", "
                + link("eyJkaXJlY3Rpb24iOiJuZXh0IiwibGFzdF9pZCI6Mn0", "next"),
        "X-Shopify-Shop-Api-Call-Limit": "2/40"})
    mock.add(responses.GET, ORDERS, json={"orders": pages[2]}, headers={
        "Link": link("eyJkaXJlY3Rpb24iOiJwcmV2IiwibGFzdF9pZCI6M30", "previous"),
        "X-Shopify-Shop-Api-Call-Limit": "3/40"})

    fetched = list(admin.orders_updated_since(datetime(2026, 11, 20, 14, 0, tzinfo=UTC)))

    queries = [parse_qs(urlsplit(str(call.request.url)).query) for call in mock.calls]
    assert queries == [
        {"status": ["any"], "updated_at_min": ["2026-11-20T14:00:00+00:00"], "limit": ["250"],
         "order": ["updated_at asc"]},
        {"limit": ["250"], "page_info": ["eyJkaXJlY3Rpb24iOiJuZXh0IiwibGFzdF9pZCI6MX0"]},
        {"limit": ["250"], "page_info": ["eyJkaXJlY3Rpb24iOiJuZXh0IiwibGFzdF9pZCI6Mn0"]},
    ]
    assert [f.external_id for f in fetched] == ["5813441806523", "5813441806524",
                                                "5813441806525", "5813441806526"]
    assert fetched[0].updated_at == datetime(2026, 11, 20, 14, 14, 5, tzinfo=UTC)
    expected = [order for page in pages for order in page]
    assert [json.loads(f.raw_body) for f in fetched] == expected
    assert fetched[0].raw_body == json.dumps(expected[0], separators=(",", ":")).encode()
    assert all(call.request.headers["X-Shopify-Access-Token"] == TOKEN for call in mock.calls)


def test_naive_times_are_refused_before_any_request(admin: ShopifyAdmin,
                                                    mock: responses.RequestsMock) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        admin.orders_updated_since(datetime(2026, 11, 20))
    assert len(mock.calls) == 0


def test_until_bounds_the_window(admin: ShopifyAdmin, mock: responses.RequestsMock) -> None:
    mock.add(responses.GET, ORDERS, json={"orders": []})

    assert list(admin.orders_updated_since(datetime(2026, 11, 20, 14, 0, tzinfo=UTC),
                                           until=datetime(2026, 11, 21, tzinfo=UTC))) == []

    query = parse_qs(urlsplit(str(mock.calls[0].request.url)).query)
    assert query["updated_at_max"] == ["2026-11-21T00:00:00+00:00"]


def test_next_pages_stay_on_the_configured_base_url(clock: FakeClock,
                                                    mock: responses.RequestsMock) -> None:
    proxy = "http://127.0.0.1:8089/admin/api/2026-10"
    admin = ShopifyAdmin(SHOP, TOKEN, base_url=proxy, clock=clock, sleep=clock.sleep)
    mock.add(responses.GET, f"{proxy}/orders.json",
             json={"orders": [order_json(1, "2026-11-20T09:14:05-05:00")]},
             headers={"Link": link("cGFnZTI", "next", host="evil.example")})
    mock.add(responses.GET, f"{proxy}/orders.json",
             json={"orders": [order_json(2, "2026-11-20T09:15:05-05:00")]})

    fetched = list(admin.orders_updated_since(datetime(2026, 11, 20, tzinfo=UTC)))

    assert [f.external_id for f in fetched] == ["1", "2"]
    assert [urlsplit(str(c.request.url)).netloc for c in mock.calls] == ["127.0.0.1:8089"] * 2


def test_too_many_requests_honours_retry_after(admin: ShopifyAdmin,
                                               mock: responses.RequestsMock,
                                               clock: FakeClock) -> None:
    mock.add(responses.GET, ORDERS, status=429, json={"errors": "Exceeded 2 calls per second for "
                                                                "api client. Reduce request rates "
                                                                "to resume uninterrupted service."},
             headers={"Retry-After": "2.0", "X-Shopify-Shop-Api-Call-Limit": "40/40"})
    mock.add(responses.GET, ORDERS, json={"orders": [order_json(1, "2026-11-20T09:14:05-05:00")]})

    fetched = list(admin.orders_updated_since(datetime(2026, 11, 20, tzinfo=UTC)))

    assert [f.external_id for f in fetched] == ["1"]
    assert clock.sleeps == [2.0]
    assert len(mock.calls) == 2


def test_a_nearly_full_call_limit_slows_the_next_page(admin: ShopifyAdmin,
                                                      mock: responses.RequestsMock,
                                                      clock: FakeClock) -> None:
    mock.add(responses.GET, ORDERS, json={"orders": []}, headers={
        "Link": link("cGFnZTI", "next"), "X-Shopify-Shop-Api-Call-Limit": "39/40"})
    mock.add(responses.GET, ORDERS, json={"orders": []})

    list(admin.orders_updated_since(datetime(2026, 11, 20, tzinfo=UTC)))

    # Two calls of headroom, draining at 2 calls a second: 39 -> 38 takes half a second.
    assert clock.sleeps == [0.5]


def test_rest_server_errors_are_retryable_after_bounded_retries(
        admin: ShopifyAdmin, mock: responses.RequestsMock, clock: FakeClock) -> None:
    mock.add(responses.GET, ORDERS, status=502, body="Bad Gateway")

    with pytest.raises(ChannelApiError, match="502") as caught:
        list(admin.orders_updated_since(datetime(2026, 11, 20, tzinfo=UTC)))

    assert caught.value.retryable
    assert len(mock.calls) == 5
