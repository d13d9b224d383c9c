"""Which supplier ships which line: one pure function and the data it decides on.

The rules, first match wins:
1. the explicit SKU map (`flask suppliers import-skus`): lowest priority number, then lowest cost,
   then the supplier listed first in suppliers.toml;
2. a supplier's `skus` / `sku_file` (if two list the SKU, the one listed first in the file);
3. `sku_prefixes`, the longest matching prefix across all suppliers (ties: listed first);
4. `vendors`, the channel's vendor field, case-insensitive;
5. the `default = true` supplier;
6. unrouted: the line needs a mapping, and says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from app.suppliers import SupplierBook, normalize_sku


@dataclass(frozen=True)
class SkuCandidate:
    """One row of the SKU map."""

    supplier: str
    supplier_sku: str | None
    cost: Decimal | None
    priority: int


@dataclass(frozen=True)
class Route:
    supplier: str | None        # None: unrouted
    rule: str                   # sku_map | sku_list | sku_prefix | vendor | default | unrouted
    supplier_sku: str | None = None
    cost: Decimal | None = None
    reason: str | None = None   # why a line is unrouted


def route_line(
    sku: str | None,
    vendor: str | None,
    book: SupplierBook,
    sku_map: Mapping[str, tuple[SkuCandidate, ...]],
) -> Route:
    """Pick the supplier for one line (see the module docstring for the rules)."""
    sku = normalize_sku(sku)
    order = {s.key: i for i, s in enumerate(book.suppliers)}
    if sku is not None:
        candidates = [c for c in sku_map.get(sku, ()) if c.supplier in order]
        if candidates:
            best = min(candidates, key=lambda c: (
                c.priority,
                c.cost if c.cost is not None else Decimal("Infinity"),
                order[c.supplier],
            ))
            return Route(best.supplier, "sku_map", best.supplier_sku, best.cost)
        for supplier in book.suppliers:
            if sku in supplier.skus:
                return Route(supplier.key, "sku_list")
        best_prefix: tuple[int, int, str] | None = None
        for i, supplier in enumerate(book.suppliers):
            for prefix in supplier.sku_prefixes:
                if sku.startswith(prefix) and (
                    best_prefix is None or (-len(prefix), i) < best_prefix[:2]
                ):
                    best_prefix = (-len(prefix), i, supplier.key)
        if best_prefix is not None:
            return Route(best_prefix[2], "sku_prefix")
    if vendor and vendor.strip():
        wanted = vendor.strip().casefold()
        for supplier in book.suppliers:
            if wanted in supplier.vendors:
                return Route(supplier.key, "vendor")
    if book.default is not None:
        return Route(book.default.key, "default")
    what = f"SKU {sku!r}" if sku else "a line without SKU"
    return Route(
        None, "unrouted",
        reason=f"no SKU map entry, supplier SKU list, prefix or vendor matches {what}"
        + (f" (vendor {vendor!r})" if vendor else "") + ", and no supplier is the default",
    )
