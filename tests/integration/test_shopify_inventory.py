"""Shopify stock over `responses` (no network), against answers shaped like Shopify's documented
ones: SKUs to inventory items, which location, and `inventorySetQuantities` with its
`@idempotent` key, compare-and-swap, batches and errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from app.channels.base import (
    ChannelApiError,
    InventoryApi,
    Listing,
    QuantityChange,
    SetResult,
)
from app.channels.shopify_api import ShopifyAdmin, shopify_api_settings_from_env
from tests.integration.test_shopify_api import (
    SHOP,
    TOKEN,
    FakeAdminGraphQL,
    FakeClock,
    cost,
    throttled,
)

WAREHOUSE = "gid://shopify/Location/24826418"
STORE = "gid://shopify/Location/60345401"
SET = "OrderHubInventorySet"
VARIANTS = "OrderHubVariantsBySku"
LOCATIONS = "OrderHubLocations"
AVAILABLE = "OrderHubInventoryAvailable"


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


def queries(mock: responses.RequestsMock, op: str) -> list[str]:
    """The GraphQL documents sent for `op`, in order."""
    raw: list[Any] = [call.request.body for call in mock.calls]   # what requests sent: bytes
    bodies = [json.loads(body) for body in raw]
    return [body["query"] for body in bodies if f" {op}" in body["query"].split("{")[0]]


# ---------------------------------------------------------------------- Shopify-shaped answers

def item_gid(n: int) -> str:
    return f"gid://shopify/InventoryItem/{43729000 + n}"


def variant(n: int, sku: str, *, stocked_at: str | None = WAREHOUSE) -> dict[str, Any]:
    level = None if stocked_at is None else {
        "id": f"gid://shopify/InventoryLevel/{523463000 + n}?inventory_item_id={43729000 + n}"}
    return {"id": f"gid://shopify/ProductVariant/{39072856000 + n}", "sku": sku,
            "inventoryItem": {"id": item_gid(n), "inventoryLevel": level}}


def variants(*nodes: dict[str, Any], next_cursor: str | None = None) -> dict[str, Any]:
    return {"data": {"productVariants": {
                "pageInfo": {"hasNextPage": next_cursor is not None, "endCursor": next_cursor},
                "nodes": list(nodes)}},
            "extensions": cost(302)}


def locations(*nodes: tuple[str, str]) -> dict[str, Any]:
    return {"data": {"locations": {"nodes": [{"id": gid, "name": name, "isActive": True}
                                             for gid, name in nodes]}},
            "extensions": cost(3)}


def set_ok(group: int = 1192812) -> dict[str, Any]:
    return {"data": {"inventorySetQuantities": {
                "inventoryAdjustmentGroup": {"id": f"gid://shopify/InventoryAdjustmentGroup/{group}"},
                "userErrors": []}},
            "extensions": cost(10)}


def set_refused(*errors: tuple[int | None, str, str]) -> dict[str, Any]:
    """userErrors as (index of the quantity or None, code, message)."""
    return {"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": [
                {"field": ["input", "quantities", str(index), "changeFromQuantity"]
                 if index is not None else ["input", "reason"],
                 "code": code, "message": message} for index, code, message in errors]}},
            "extensions": cost(10)}


STALE = ("CHANGE_FROM_QUANTITY_STALE", "The changeFromQuantity value does not match persisted "
                                       "value.")


def available_now(*levels: tuple[int, int]) -> dict[str, Any]:
    return {"data": {"nodes": [
                {"id": item_gid(n), "inventoryLevel": {"quantities": [
                    {"name": "available", "quantity": quantity}]}} for n, quantity in levels]},
            "extensions": cost(6)}


def change(n: int, sku: str, quantity: int, compare: int | None) -> QuantityChange:
    return QuantityChange(Listing(sku, item_gid(n), WAREHOUSE), quantity, compare)


# ---------------------------------------------------------------------- lookup

def test_skus_are_looked_up_in_batches_and_unknown_ones_are_absent(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    skus = [f"GS-SEED-{n:03d}" for n in range(251)]
    # The search also answers look-alikes; only exact SKUs count.
    shopify.reply(VARIANTS, variants(*[variant(n, sku) for n, sku in enumerate(skus[:250])
                                       if sku != "GS-SEED-007"],
                                     variant(900, "GS-SEED-007-XL")))
    shopify.reply(VARIANTS, variants(variant(250, "GS-SEED-250")))

    found = admin.lookup_listings(skus, location_id="24826418")

    assert len(found) == 250
    assert "GS-SEED-007" not in found
    assert found["GS-SEED-250"] == Listing("GS-SEED-250", item_gid(250), WAREHOUSE)
    assert found["GS-SEED-000"] == Listing("GS-SEED-000", item_gid(0), WAREHOUSE)
    sent = shopify.calls(VARIANTS)
    assert [s["query"].count("sku:") for s in sent] == [250, 1]
    assert sent[0]["query"].startswith('sku:"GS-SEED-000" OR sku:"GS-SEED-001" OR ')
    assert sent[1]["query"] == 'sku:"GS-SEED-250"'
    # Shopify's largest page; 3 cost points a variant keep the query under 1,000 points.
    assert all(s["first"] == 250 for s in sent)
    assert all(s["locationId"] == WAREHOUSE for s in sent)
    assert shopify.calls(LOCATIONS) == []


def test_lookup_follows_the_next_page(admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(VARIANTS, variants(variant(1, "AG-BED-CED-L"), next_cursor="eyJsYXN0X2lkIjoxfQ"))
    shopify.reply(VARIANTS, variants(variant(2, "AG-TRWL")))

    found = admin.lookup_listings(["AG-BED-CED-L", "AG-TRWL"], location_id=WAREHOUSE)

    assert set(found) == {"AG-BED-CED-L", "AG-TRWL"}
    assert [c["after"] for c in shopify.calls(VARIANTS)] == [None, "eyJsYXN0X2lkIjoxfQ"]


def test_skus_with_quotes_are_escaped_for_the_search(admin: ShopifyAdmin,
                                                     shopify: FakeAdminGraphQL) -> None:
    shopify.reply(VARIANTS, variants(variant(1, 'POT 12" CLAY')))

    found = admin.lookup_listings(['POT 12" CLAY'], location_id=WAREHOUSE)

    assert list(found) == ['POT 12" CLAY']
    assert shopify.calls(VARIANTS)[0]["query"] == 'sku:"POT 12\\" CLAY"'


def test_a_sku_not_stocked_at_the_location_is_absent_and_a_stocked_duplicate_wins(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL,
        caplog: pytest.LogCaptureFixture) -> None:
    shopify.reply(VARIANTS, variants(variant(1, "AG-BED-CED-L", stocked_at=None),
                                     variant(2, "GS-SOIL-40", stocked_at=None),
                                     variant(3, "GS-SOIL-40")))

    found = admin.lookup_listings(["AG-BED-CED-L", "GS-SOIL-40"], location_id=WAREHOUSE)

    assert found == {"GS-SOIL-40": Listing("GS-SOIL-40", item_gid(3), WAREHOUSE)}
    assert "AG-BED-CED-L" in caplog.text and "not stocked at location" in caplog.text
    assert "GS-SOIL-40 is on 2 variants" in caplog.text


def test_the_only_active_location_is_used_and_asked_for_once(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(LOCATIONS, locations((WAREHOUSE, "Garden Goods Warehouse")))
    shopify.reply(VARIANTS, variants(variant(1, "AG-TRWL")), times=2)

    first = admin.lookup_listings(["AG-TRWL"])
    second = admin.lookup_listings(["AG-TRWL"])

    assert first["AG-TRWL"].location_id == WAREHOUSE == second["AG-TRWL"].location_id
    assert len(shopify.calls(LOCATIONS)) == 1


def test_several_active_locations_without_a_setting_are_refused(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(LOCATIONS, locations((WAREHOUSE, "Garden Goods Warehouse"),
                                       (STORE, "Portland store")))

    with pytest.raises(ChannelApiError) as caught:
        admin.lookup_listings(["AG-TRWL"])

    assert not caught.value.retryable
    assert "SHOPIFY_LOCATION_ID" in str(caught.value)
    assert "Portland store = gid://shopify/Location/60345401" in str(caught.value)
    assert shopify.calls(VARIANTS) == []


def test_the_configured_location_is_used_without_asking(clock: FakeClock,
                                                        shopify: FakeAdminGraphQL) -> None:
    settings = shopify_api_settings_from_env({"SHOPIFY_ACCESS_TOKEN": TOKEN,
                                              "SHOPIFY_SHOP_DOMAIN": SHOP,
                                              "SHOPIFY_LOCATION_ID": "60345401"})
    assert settings is not None
    admin = ShopifyAdmin.from_settings(settings)
    shopify.reply(VARIANTS, variants(variant(1, "AG-TRWL", stocked_at=STORE)))

    found = admin.lookup_listings(["AG-TRWL"])

    assert found["AG-TRWL"].location_id == STORE
    assert shopify.calls(VARIANTS)[0]["locationId"] == STORE
    assert shopify.calls(LOCATIONS) == []


# ---------------------------------------------------------------------- set quantities

def test_set_sends_absolute_available_quantities_with_an_idempotency_key(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL, mock: responses.RequestsMock) -> None:
    shopify.reply(SET, set_ok())

    result = admin.set_quantities(
        [change(1, "AG-BED-CED-L", 12, 5), change(2, "AG-TRWL", 0, None)],
        reference="gid://orderhub/StockSync/run-7f3a", idempotency_key="run-7f3a:shopify:0")

    assert result == SetResult(applied=("AG-BED-CED-L", "AG-TRWL"), mismatched=(), errors=())
    [sent] = shopify.calls(SET)
    assert sent["input"] == {
        "name": "available", "reason": "correction",
        "referenceDocumentUri": "gid://orderhub/StockSync/run-7f3a",
        "quantities": [
            {"inventoryItemId": item_gid(1), "locationId": WAREHOUSE, "quantity": 12,
             "changeFromQuantity": 5},
            # Unknown before: an explicit null opts out of the check (omitting it is an error).
            {"inventoryItemId": item_gid(2), "locationId": WAREHOUSE, "quantity": 0,
             "changeFromQuantity": None},
        ]}
    assert uuid.UUID(sent["key"]).version == 5
    [query] = queries(mock, SET)
    assert "inventorySetQuantities(input: $input) @idempotent(key: $key)" in query
    assert "$key: String!" in query


def test_a_throttled_batch_is_sent_again_with_the_same_key(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL, clock: FakeClock) -> None:
    shopify.reply(SET, throttled(requested=10, available=2))
    shopify.reply(SET, set_ok())

    result = admin.set_quantities([change(1, "AG-TRWL", 4, 3)], idempotency_key="job-81")

    first, second = shopify.calls(SET)
    assert first == second
    assert result.applied == ("AG-TRWL",)
    assert clock.sleeps == [1.0]   # the backoff floor beats (10 - 2) / 100 s


def test_the_same_push_run_again_reuses_its_keys_and_another_gets_new_ones(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_ok(), times=4)
    changes = [change(1, "AG-TRWL", 4, 3)]

    admin.set_quantities(changes, idempotency_key="job-81")
    admin.set_quantities(changes, idempotency_key="job-81")      # the job retried
    admin.set_quantities(changes, idempotency_key="job-82")      # another push
    admin.set_quantities([change(1, "AG-TRWL", 5, 3)], idempotency_key="job-81")

    keys = [c["key"] for c in shopify.calls(SET)]
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3


def test_more_than_250_quantities_go_in_several_requests_with_their_own_keys(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_ok(1), times=1)
    shopify.reply(SET, set_ok(2), times=1)
    changes = [change(n, f"GS-SEED-{n:03d}", n % 7, None) for n in range(251)]

    result = admin.set_quantities(changes, idempotency_key="run-7f3a:shopify")

    sent = shopify.calls(SET)
    assert [len(s["input"]["quantities"]) for s in sent] == [250, 1]
    assert sent[1]["input"]["quantities"][0]["inventoryItemId"] == item_gid(250)
    assert sent[0]["key"] != sent[1]["key"]
    assert len(result.applied) == 251 and result.mismatched == () and result.errors == ()


def test_a_stale_quantity_is_reported_with_what_shopify_has_and_the_rest_is_set(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_refused((1, *STALE), (2, *STALE)))
    shopify.reply(SET, set_ok())
    # The soil was sold meanwhile; the trowel already is at what we wanted.
    shopify.reply(AVAILABLE, available_now((2, 7), (3, 9)))

    result = admin.set_quantities(
        [change(1, "AG-BED-CED-L", 12, 5), change(2, "GS-SOIL-40", 10, 8),
         change(3, "AG-TRWL", 9, 4)], idempotency_key="run-7f3a:shopify:0")

    assert result.mismatched == (("GS-SOIL-40", 7),)
    assert result.applied == ("AG-BED-CED-L", "AG-TRWL")
    assert result.errors == ()
    first, rest = shopify.calls(SET)
    assert [q["inventoryItemId"] for q in rest["input"]["quantities"]] == [item_gid(1)]
    assert rest["key"] != first["key"]
    assert shopify.calls(AVAILABLE) == [{"ids": [item_gid(2), item_gid(3)],
                                         "locationId": WAREHOUSE}]


def test_a_stale_quantity_whose_current_value_cannot_be_read_is_reported_as_unknown(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_refused((0, *STALE)))
    shopify.reply(AVAILABLE, {"errors": [{"message": "Access denied for inventoryLevel field.",
                                          "extensions": {"code": "ACCESS_DENIED"}}]})

    result = admin.set_quantities([change(1, "AG-TRWL", 9, 4)], idempotency_key="job-9")

    assert result == SetResult(applied=(), mismatched=(("AG-TRWL", None),), errors=())


def test_user_errors_are_reported_per_sku_and_the_others_are_set(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_refused(
        (0, "ITEM_NOT_STOCKED_AT_LOCATION",
         "The specified inventory item is not stocked at the location.")))
    shopify.reply(SET, set_ok())

    result = admin.set_quantities([change(1, "AG-BED-CED-L", 12, 5), change(2, "AG-TRWL", 4, 3)],
                                  idempotency_key="job-12")

    assert result.applied == ("AG-TRWL",)
    assert result.errors == ("AG-BED-CED-L: The specified inventory item is not stocked at the "
                             "location. [ITEM_NOT_STOCKED_AT_LOCATION]",)
    assert result.mismatched == ()


def test_an_error_about_the_whole_request_fails_every_sku_of_it(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_refused((None, "INVALID_REASON", "The specified reason is invalid.")))

    result = admin.set_quantities([change(1, "AG-BED-CED-L", 12, 5), change(2, "AG-TRWL", 4, 3)],
                                  reason="restock-ish", idempotency_key="job-13")

    assert result.applied == ()
    assert result.errors == (
        "AG-BED-CED-L: The specified reason is invalid. [INVALID_REASON]",
        "AG-TRWL: The specified reason is invalid. [INVALID_REASON]")
    assert len(shopify.calls(SET)) == 1


def test_a_key_whose_earlier_attempt_failed_is_replaced_once(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_refused((None, "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                                    "A previous request with this idempotency key failed. "
                                    "Retry with a new idempotency key.")))
    shopify.reply(SET, set_ok())

    result = admin.set_quantities([change(1, "AG-TRWL", 4, 3), change(2, "GS-SOIL-40", 1, 0)],
                                  idempotency_key="job-14")

    first, second = shopify.calls(SET)
    assert first["input"] == second["input"] and first["key"] != second["key"]
    assert result.applied == ("AG-TRWL", "GS-SOIL-40")


def test_a_request_still_in_progress_is_retryable(admin: ShopifyAdmin,
                                                  shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, set_refused((None, "IDEMPOTENCY_CONCURRENT_REQUEST",
                                    "This request is currently in progress, please try again.")))

    with pytest.raises(ChannelApiError) as caught:
        admin.set_quantities([change(1, "AG-TRWL", 4, 3), change(2, "GS-SOIL-40", 1, 0)],
                             idempotency_key="job-15")

    assert caught.value.retryable


def test_a_server_error_is_retryable_and_the_mutation_is_not_repeated(
        admin: ShopifyAdmin, shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, {"errors": [{"message": "Internal error. Looks like something went "
                                               "wrong on our end."}]}, status=502)

    with pytest.raises(ChannelApiError, match="502") as caught:
        admin.set_quantities([change(1, "AG-TRWL", 4, 3)], idempotency_key="job-16")

    # It may have been applied: the caller runs the push again with the same key.
    assert caught.value.retryable
    assert len(shopify.calls(SET)) == 1


def test_a_missing_scope_is_not_retryable_and_names_it(admin: ShopifyAdmin,
                                                       shopify: FakeAdminGraphQL) -> None:
    shopify.reply(SET, {"errors": [{"message": "Access denied for inventorySetQuantities field. "
                                               "Required access: `write_inventory` access scope.",
                                    "extensions": {"code": "ACCESS_DENIED"}}]})

    with pytest.raises(ChannelApiError, match="write_inventory") as caught:
        admin.set_quantities([change(1, "AG-TRWL", 4, 3)], idempotency_key="job-17")

    assert not caught.value.retryable


def test_api_versions_before_2026_01_are_refused_before_sending(
        clock: FakeClock, shopify: FakeAdminGraphQL, mock: responses.RequestsMock) -> None:
    admin = ShopifyAdmin(SHOP, TOKEN, api_version="2025-10", clock=clock, sleep=clock.sleep)

    with pytest.raises(ChannelApiError, match="SHOPIFY_API_VERSION") as caught:
        admin.set_quantities([change(1, "AG-TRWL", 4, 3)], idempotency_key="job-18")

    assert not caught.value.retryable
    assert len(mock.calls) == 0


def test_nothing_to_set_sends_nothing_and_a_sku_twice_is_a_bug(
        admin: ShopifyAdmin, mock: responses.RequestsMock) -> None:
    assert admin.set_quantities([], idempotency_key="job-19") == SetResult((), (), ())
    with pytest.raises(ValueError, match="AG-TRWL"):
        admin.set_quantities([change(1, "AG-TRWL", 4, 3), change(1, "AG-TRWL", 5, 4)],
                             idempotency_key="job-19")
    assert len(mock.calls) == 0


def test_the_admin_client_is_an_inventory_api(admin: ShopifyAdmin,
                                              shopify: FakeAdminGraphQL) -> None:
    api: InventoryApi = admin   # mypy checks that the client fits the protocol
    shopify.reply(VARIANTS, variants(variant(1, "AG-TRWL")))
    shopify.reply(SET, set_ok())

    listings = api.lookup_listings(["AG-TRWL"], location_id=WAREHOUSE)
    result = api.set_quantities([QuantityChange(listings["AG-TRWL"], 4, None)],
                                idempotency_key="job-20")

    assert result.applied == ("AG-TRWL",)
