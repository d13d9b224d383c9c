"""Shopify stock: which inventory item and location each SKU is, and setting `available`.

Public API (`ShopifyAdmin.lookup_listings` / `.set_quantities` delegate here: the
`app.channels.base.InventoryApi` protocol): `ShopifyInventory(http, *, api_version,
location_id=None)` with
- `.location()`: SHOPIFY_LOCATION_ID, else the shop's only active location (`locations(first:
  50)`, asked once); several active and none configured is a non-retryable `ShopifyApiError`
  asking for SHOPIFY_LOCATION_ID: OrderHub does not guess where stock lives.
- `.lookup_listings(skus, *, location_id=None)`: `productVariants(query: 'sku:"A" OR sku:"B"')`,
  250 SKUs a query, pages of 250 (Shopify's largest `first:`; at 3 cost points a variant a
  query asks for 752 of the 1,000 one query may cost:
  https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits). Only exact SKUs count
  (the search finds look-alikes too). A SKU is absent when no variant has it or its item is not
  stocked at the location (logged); of two variants with one SKU the first stocked one is used
  (logged).
- `.set_quantities(changes, *, reason="correction", reference=None, idempotency_key)`:
  `inventorySetQuantities`, name "available", absolute quantities, 250 a request (Shopify's cap
  on every input array: https://shopify.dev/docs/api/usage/limits).

Compare-and-swap. Since 2026-01 each quantity carries `changeFromQuantity`: the quantity we last
pushed when known (Shopify refuses the set with CHANGE_FROM_QUANTITY_STALE if it holds another
number), else an explicit null, which opts out of the check. From 2026-04 the field is required
and the older `compareQuantity` / `ignoreCompareQuantity` are gone, so versions before 2026-01
are refused here rather than half supported. A stale quantity is not an error: it is reported in
`SetResult.mismatched` with the quantity Shopify has now (read right after; None if that read
failed), and the caller decides. Shopify documents a stale quantity as failing the mutation, so
when a request comes back with userErrors on some quantities the others are sent again in a
follow-up request. A quantity found stale that already equals what we wanted counts as applied.

Idempotency. From 2026-04 `@idempotent(key:)` is mandatory on this mutation. Every request gets
its own key, a UUID derived from the caller's `idempotency_key`, the batch number, the attempt
and the request's variables: sending the same request again (a THROTTLED retry by the transport,
or a job that runs again after a timeout) reuses its key, so Shopify applies it once and answers
the original result; anything else gets a new key, because Shopify refuses a key reused with
other parameters (IDEMPOTENCY_KEY_PARAMETER_MISMATCH). IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED is
answered once with a new key, as Shopify asks; IDEMPOTENCY_CONCURRENT_REQUEST is a retryable
error. Sources: https://shopify.dev/changelog/making-idempotency-mandatory-for-inventory-
adjustments-and-refund-mutations, https://shopify.dev/docs/api/usage/implementing-idempotency,
https://shopify.dev/changelog/finalizing-compare-and-swap-redesign-for-inventory-set-quantities.

Failures: HTTP, GraphQL and throttling are `shopify_http.AdminTransport`'s (retryable or not;
a mutation that may have reached Shopify is not repeated there). A failure in a later batch
raises, so earlier batches' results are not returned: run the same call again with the same
key and those batches replay without being applied twice. Other userErrors (item not stocked at
the location, invalid reason, ...) go to `SetResult.errors`, one line per SKU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from app.channels.base import Listing, QuantityChange, SetResult
from app.channels.shopify_http import AdminTransport, ShopifyApiError, json_list, json_object
from app.channels.shopify_settings import LOCATION_GID

__all__ = ["Listing", "QuantityChange", "SetResult", "ShopifyInventory", "batch_key"]

logger = logging.getLogger(__name__)

SET_BATCH = 250
LOOKUP_BATCH = 250      # SKUs per query: one page when each SKU has one variant
LOOKUP_PAGE = 250       # Shopify's largest `first:`; 3 cost points a variant, 752 in all
MIN_API_VERSION = "2026-01"
INVENTORY_ITEM_GID = "gid://shopify/InventoryItem/"
STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
_KEY_NAMESPACE = uuid.UUID("5b0f2a8e-1c9d-4f43-9a57-0e6a3c8d7b21")  # OrderHub's, fixed forever

SCOPE_READ_PRODUCTS = "read_products and read_inventory"
SCOPE_READ_LOCATIONS = "read_locations (or read_inventory)"
SCOPE_READ_INVENTORY = "read_inventory"
SCOPE_WRITE_INVENTORY = "write_inventory"

LOCATIONS_QUERY = """query OrderHubLocations {
  locations(first: 50) { nodes { id name isActive } }
}"""
VARIANTS_BY_SKU_QUERY = """\
query OrderHubVariantsBySku($query: String!, $first: Int!, $after: String, $locationId: ID!) {
  productVariants(first: $first, after: $after, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes { id sku inventoryItem { id inventoryLevel(locationId: $locationId) { id } } }
  }
}"""
INVENTORY_SET_MUTATION = """\
mutation OrderHubInventorySet($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}"""
AVAILABLE_QUERY = """query OrderHubInventoryAvailable($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevel(locationId: $locationId) { quantities(names: ["available"]) { name quantity } }
    }
  }
}"""


@dataclass
class _Outcome:
    applied: list[QuantityChange] = field(default_factory=list)
    mismatched: list[QuantityChange] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)   # SKU -> what Shopify said


class _Candidate(NamedTuple):   # a catalogue's lookups make hundreds of thousands
    variant_id: str
    item_id: str
    stocked: bool


class ShopifyInventory:
    """The stock calls of one shop's Admin API, over the client's shared transport."""

    def __init__(self, http: AdminTransport, *, api_version: str,
                 location_id: str | None = None) -> None:
        self._http = http
        self.api_version = api_version
        self.location_id = location_gid(location_id) if location_id else None
        self._only_location: str | None = None

    # ------------------------------------------------------------------ location

    def location(self) -> str:
        """The location whose stock OrderHub sets; see the module docstring."""
        if self.location_id:
            return self.location_id
        if self._only_location:
            return self._only_location
        data = self._http.graphql("OrderHubLocations", LOCATIONS_QUERY, {},
                                  scope_hint=SCOPE_READ_LOCATIONS)
        active = [(node["id"], str(node.get("name") or "?"))
                  for node in map(json_object, json_list(json_object(
                      data.get("locations")).get("nodes")))
                  if isinstance(node.get("id"), str) and node.get("isActive") is not False]
        if not active:
            raise ShopifyApiError("Shopify lists no active location for this shop (or the app "
                                  f"lacks {SCOPE_READ_LOCATIONS})", retryable=False)
        if len(active) > 1:
            names = ", ".join(f"{name} = {gid}" for gid, name in active[:10])
            raise ShopifyApiError(f"the shop has {len(active)} active locations ({names}): set "
                                  "SHOPIFY_LOCATION_ID to the one whose stock OrderHub manages",
                                  retryable=False)
        self._only_location = active[0][0]
        logger.info("shopify: stock goes to the shop's only active location %s (%s)",
                    active[0][0], active[0][1])
        return self._only_location

    # ------------------------------------------------------------------ lookup

    def lookup_listings(self, skus: Sequence[str], *,
                        location_id: str | None = None) -> dict[str, Listing]:
        """Inventory item and location of each SKU Shopify has; the others are absent."""
        wanted = list(dict.fromkeys(sku for sku in skus if sku))
        if not wanted:
            return {}
        location = location_gid(location_id) if location_id else self.location()
        found: dict[str, Listing] = {}
        for start in range(0, len(wanted), LOOKUP_BATCH):
            batch = wanted[start:start + LOOKUP_BATCH]
            for sku, candidates in self._variants(batch, location).items():
                listing = _choose(sku, candidates, location)
                if listing is not None:
                    found[sku] = listing
        logger.info("shopify: %d of %d SKUs found at %s", len(found), len(wanted), location)
        return found

    def _variants(self, skus: list[str], location: str) -> dict[str, list[_Candidate]]:
        query = " OR ".join(f"sku:{_quoted(sku)}" for sku in skus)
        wanted = set(skus)
        result: dict[str, list[_Candidate]] = {}
        after: str | None = None
        while True:
            data = self._http.graphql(
                "OrderHubVariantsBySku", VARIANTS_BY_SKU_QUERY,
                {"query": query, "first": LOOKUP_PAGE, "after": after, "locationId": location},
                scope_hint=SCOPE_READ_PRODUCTS)
            connection = json_object(data.get("productVariants"))
            for node in map(json_object, json_list(connection.get("nodes"))):
                sku, item = node.get("sku"), json_object(node.get("inventoryItem"))
                if sku in wanted and isinstance(item.get("id"), str):
                    result.setdefault(sku, []).append(_Candidate(
                        str(node.get("id") or "?"), item["id"],
                        item.get("inventoryLevel") is not None))
            after = _next_cursor(connection)
            if after is None:
                return result

    # ------------------------------------------------------------------ set

    def set_quantities(self, changes: Sequence[QuantityChange], *, reason: str = "correction",
                       reference: str | None = None, idempotency_key: str) -> SetResult:
        """Set absolute `available` quantities; see the module docstring for what comes back."""
        if not idempotency_key:
            raise ValueError("set_quantities needs an idempotency key")
        if not reason:
            raise ValueError("set_quantities needs a reason (e.g. correction)")
        _refuse_duplicates(changes)
        if not changes:
            return SetResult(applied=(), mismatched=(), errors=())
        if self.api_version < MIN_API_VERSION:
            raise ShopifyApiError(f"setting Shopify stock needs API version {MIN_API_VERSION} or "
                                  f"later (changeFromQuantity, @idempotent); SHOPIFY_API_VERSION "
                                  f"is {self.api_version}", retryable=False)
        outcome = _Outcome()
        for number, start in enumerate(range(0, len(changes), SET_BATCH)):
            self._set_batch(list(changes[start:start + SET_BATCH]), number, reason, reference,
                            idempotency_key, outcome)
        actual = self._available_now(outcome.mismatched) if outcome.mismatched else {}
        applied = {c.listing.sku for c in outcome.applied}
        mismatched: list[tuple[str, int | None]] = []
        for change in outcome.mismatched:
            now = actual.get(_level(change.listing))
            if now == change.quantity:   # Shopify already has what we wanted
                applied.add(change.listing.sku)
            else:
                mismatched.append((change.listing.sku, now))
        return SetResult(
            applied=tuple(c.listing.sku for c in changes if c.listing.sku in applied),
            mismatched=tuple(mismatched),
            errors=tuple(f"{c.listing.sku}: {outcome.errors[c.listing.sku]}" for c in changes
                         if c.listing.sku in outcome.errors),
        )

    def _set_batch(self, pending: list[QuantityChange], number: int, reason: str,
                   reference: str | None, idempotency_key: str, outcome: _Outcome) -> None:
        attempt, renewed = 0, False
        while pending:
            payload = _set_input(pending, reason, reference)
            key = batch_key(idempotency_key, number, attempt, payload)
            data = self._http.graphql("OrderHubInventorySet", INVENTORY_SET_MUTATION,
                                      {"input": payload, "key": key},
                                      scope_hint=SCOPE_WRITE_INVENTORY, mutation=True)
            answer = json_object(data.get("inventorySetQuantities"))
            user_errors = [json_object(e) for e in json_list(answer.get("userErrors"))]
            if not user_errors:
                group = json_object(answer.get("inventoryAdjustmentGroup")).get("id")
                logger.info("shopify stock batch %d: %d quantities set (%s, key %s)", number,
                            len(pending), group or "no change", key)
                outcome.applied.extend(pending)
                return
            codes = {e.get("code") for e in user_errors}
            if "IDEMPOTENCY_CONCURRENT_REQUEST" in codes:
                raise ShopifyApiError("Shopify is still processing an earlier request with the "
                                      "same idempotency key; try again shortly", retryable=True)
            if codes == {"IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"} and not renewed:
                # Nothing of that attempt was applied; Shopify asks for a new key.
                renewed, attempt = True, attempt + 1
                continue
            per_quantity, general = _assign(user_errors, len(pending))
            if general:
                said = _said(general)
                logger.warning("shopify stock batch %d refused: %s", number, said)
                outcome.errors.update((c.listing.sku, said) for c in pending)
                return
            for index, errors in per_quantity.items():
                change = pending[index]
                other = [e for e in errors if e.get("code") not in STALE_CODES]
                if other:
                    outcome.errors[change.listing.sku] = _said(other)
                else:
                    outcome.mismatched.append(change)
            logger.info("shopify stock batch %d: %d of %d quantities refused, sending the rest",
                        number, len(per_quantity), len(pending))
            pending = [c for i, c in enumerate(pending) if i not in per_quantity]
            attempt += 1

    def _available_now(self, changes: Iterable[QuantityChange]) -> dict[tuple[str, str], int]:
        """Shopify's `available` for these listings now; what could not be read is missing."""
        by_location: dict[str, list[str]] = {}
        for change in changes:
            by_location.setdefault(change.listing.location_id, []).append(
                _item_gid(change.listing.inventory_item_id))
        found: dict[tuple[str, str], int] = {}
        for location, items in by_location.items():
            for start in range(0, len(items), SET_BATCH):
                ids = items[start:start + SET_BATCH]
                try:
                    data = self._http.graphql("OrderHubInventoryAvailable", AVAILABLE_QUERY,
                                              {"ids": ids, "locationId": location_gid(location)},
                                              scope_hint=SCOPE_READ_INVENTORY)
                except ShopifyApiError as exc:   # the sets are done; only the figure is missing
                    logger.warning("shopify: could not read current stock at %s: %s", location,
                                   exc.message)
                    continue
                for node in map(json_object, json_list(data.get("nodes"))):
                    level = json_object(node.get("inventoryLevel"))
                    for quantity in map(json_object, json_list(level.get("quantities"))):
                        value = quantity.get("quantity")
                        if quantity.get("name") == "available" and isinstance(value, int) \
                                and isinstance(node.get("id"), str):
                            found[(node["id"], location_gid(location))] = value
        return found


# ---------------------------------------------------------------------- helpers

def batch_key(idempotency_key: str, batch: int, attempt: int, payload: Mapping[str, Any]) -> str:
    """The `@idempotent` key of one request: a UUID that is the same exactly when the caller's
    key, the batch, the attempt and the request's input are."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{idempotency_key}|{batch}|{attempt}|{digest}"))


@functools.lru_cache(maxsize=64)   # a shop has a few locations, named in every quantity set
def location_gid(value: str) -> str:
    """A location id as Shopify's gid (a bare number is accepted)."""
    text = str(value).strip()
    return LOCATION_GID + text if text.isdigit() else text


def _item_gid(value: str) -> str:
    text = str(value).strip()
    return INVENTORY_ITEM_GID + text if text.isdigit() else text


def _level(listing: Listing) -> tuple[str, str]:
    return _item_gid(listing.inventory_item_id), location_gid(listing.location_id)


def _set_input(pending: list[QuantityChange], reason: str,
               reference: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "available",
        "reason": reason,
        # changeFromQuantity must be present from 2026-04: a number checks, null opts out.
        "quantities": [{"inventoryItemId": _item_gid(c.listing.inventory_item_id),
                        "locationId": location_gid(c.listing.location_id),
                        "quantity": c.quantity,
                        "changeFromQuantity": c.compare_quantity} for c in pending],
    }
    if reference:
        payload["referenceDocumentUri"] = reference
    return payload


def _refuse_duplicates(changes: Sequence[QuantityChange]) -> None:
    skus: set[str] = set()
    levels: set[tuple[str, str]] = set()
    for change in changes:
        level = _level(change.listing)
        if change.listing.sku in skus or level in levels:
            raise ValueError(f"set_quantities got SKU {change.listing.sku!r} (or its inventory "
                             "item at that location) twice")
        skus.add(change.listing.sku)
        levels.add(level)


def _assign(errors: list[dict[str, Any]],
            count: int) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    """userErrors by the index of the quantity they name (field ["input", "quantities", "3",
    ...]); those naming none are general (a single quantity takes them all)."""
    per_quantity: dict[int, list[dict[str, Any]]] = {}
    general: list[dict[str, Any]] = []
    for error in errors:
        path = [str(part) for part in json_list(error.get("field"))]
        index: int | None = None
        if "quantities" in path:
            at = path.index("quantities") + 1
            if at < len(path) and path[at].isdigit() and int(path[at]) < count:
                index = int(path[at])
        if index is None and count == 1:
            index = 0
        if index is None:
            general.append(error)
        else:
            per_quantity.setdefault(index, []).append(error)
    return per_quantity, general


def _said(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        code = error.get("code")
        parts.append(f"{error.get('message') or 'refused'}" + (f" [{code}]" if code else ""))
    return "; ".join(parts)[:300]


def _choose(sku: str, candidates: list[_Candidate], location: str) -> Listing | None:
    if len(candidates) == 1 and candidates[0].stocked:   # nearly always
        return Listing(sku=sku, inventory_item_id=candidates[0].item_id, location_id=location)
    stocked = [c for c in candidates if c.stocked]
    if len(candidates) > 1:
        logger.warning("shopify: SKU %s is on %d variants (%s); stock goes to %s only", sku,
                       len(candidates), ", ".join(c.variant_id for c in candidates),
                       (stocked or candidates)[0].variant_id)
    if not stocked:
        logger.warning("shopify: SKU %s (%s) is not stocked at location %s: activate it there "
                       "in Shopify admin to sync its stock", sku, candidates[0].variant_id,
                       location)
        return None
    return Listing(sku=sku, inventory_item_id=stocked[0].item_id, location_id=location)


def _quoted(sku: str) -> str:
    # Shopify search syntax: a quoted value, backslash escaping \ and ".
    return '"' + sku.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _next_cursor(connection: dict[str, Any]) -> str | None:
    info = json_object(connection.get("pageInfo"))
    cursor = info.get("endCursor")
    return cursor if info.get("hasNextPage") is True and isinstance(cursor, str) else None
