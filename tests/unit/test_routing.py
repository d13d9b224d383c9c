"""Routing rules, their precedence and their ties: which supplier ships a line."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest

from app.routing import Route, SkuCandidate, route_line
from app.suppliers import Supplier, SupplierBook


def supplier(key: str, **kwargs: object) -> Supplier:
    return Supplier(key=key, name=key.title(), transport=f"file:///srv/{key}", format="orderhub",
                    **kwargs)  # type: ignore[arg-type]


BOOK = SupplierBook.of([
    supplier("agriest", sku_prefixes=("AG-",), vendors=("agriest",)),
    supplier("agriest_bulk", sku_prefixes=("AG-BULK-",)),
    supplier("greensoil", skus=frozenset({"GS-SOIL-40", "AG-SPECIAL"}), vendors=("greensoil co",)),
    supplier("tokyo", sku_prefixes=("東京-",), skus=frozenset({"café-crème"})),
    supplier("catchall", default=True),
])
NO_DEFAULT = SupplierBook.of([s for s in BOOK.suppliers if not s.default])


def cand(supplier: str, priority: int = 100, cost: str | None = None,
         part: str | None = None) -> SkuCandidate:
    return SkuCandidate(supplier, part, Decimal(cost) if cost else None, priority)


def route(sku: str | None, vendor: str | None = None, book: SupplierBook = BOOK,
          sku_map: Mapping[str, tuple[SkuCandidate, ...]] | None = None) -> Route:
    return route_line(sku, vendor, book, sku_map or {})


def test_sku_map_wins_over_every_other_rule() -> None:
    sku_map = {"AG-BED": (cand("greensoil", part="GS-991", cost="12.50"),)}
    result = route("AG-BED", "Agriest", sku_map=sku_map)
    assert result == Route("greensoil", "sku_map", "GS-991", Decimal("12.50"))


@pytest.mark.parametrize(
    ("candidates", "winner"),
    [
        # lowest priority number first
        ((cand("agriest", 2, "5.00"), cand("greensoil", 1, "9.00")), "greensoil"),
        # same priority: lowest cost
        ((cand("agriest", 1, "5.00"), cand("greensoil", 1, "4.99")), "greensoil"),
        # a known cost beats an unknown one
        ((cand("agriest", 1, None), cand("greensoil", 1, "100")), "greensoil"),
        # full tie: the supplier listed first in suppliers.toml
        ((cand("greensoil", 1, "5"), cand("agriest", 1, "5")), "agriest"),
    ],
)
def test_sku_map_ties(candidates: tuple[SkuCandidate, ...], winner: str) -> None:
    assert route("X-1", sku_map={"X-1": candidates}).supplier == winner


def test_sku_map_rows_for_suppliers_no_longer_configured_are_skipped() -> None:
    sku_map = {"AG-BED": (cand("gone_supplier", 1),)}
    assert route("AG-BED", sku_map=sku_map) == Route("agriest", "sku_prefix")


def test_supplier_sku_list_beats_prefix_and_vendor() -> None:
    assert route("AG-SPECIAL", "Agriest") == Route("greensoil", "sku_list")


def test_longest_prefix_wins() -> None:
    assert route("AG-BULK-50KG").supplier == "agriest_bulk"
    assert route("AG-TRWL").supplier == "agriest"


def test_prefix_is_case_sensitive_and_must_be_a_prefix() -> None:
    assert route("ag-trwl").rule == "default"
    assert route("XAG-TRWL").rule == "default"


def test_vendor_is_case_insensitive() -> None:
    assert route("ZZ-1", "GREENSOIL CO") == Route("greensoil", "vendor")
    assert route("ZZ-1", "  agriest ") == Route("agriest", "vendor")


def test_default_takes_what_nobody_claims() -> None:
    assert route("ZZ-1", "Unknown Vendor") == Route("catchall", "default")


def test_unrouted_line_says_why() -> None:
    result = route("ZZ-1", "Unknown Vendor", book=NO_DEFAULT)
    assert result.supplier is None and result.rule == "unrouted"
    assert result.reason is not None
    assert "'ZZ-1'" in result.reason and "'Unknown Vendor'" in result.reason


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_empty_sku_can_still_route_by_vendor_or_default(empty: str | None) -> None:
    assert route(empty, "Agriest") == Route("agriest", "vendor")
    assert route(empty) == Route("catchall", "default")
    unrouted = route(empty, book=NO_DEFAULT)
    assert unrouted.supplier is None
    assert unrouted.reason is not None and "without SKU" in unrouted.reason


def test_unicode_skus() -> None:
    assert route("東京-茶碗-01").supplier == "tokyo"
    # "é" as one code point and as "e" + combining accent are the same SKU
    assert route("cafe\u0301-crème").supplier == "tokyo"
    assert route("café-crème").rule == "sku_list"


def test_sku_is_trimmed_before_matching() -> None:
    assert route("  GS-SOIL-40 ") == Route("greensoil", "sku_list")
