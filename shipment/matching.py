"""Which purchase-order lines a shipment notice covers, and how many of each: a pure function.

Rules: a notice line is matched by its PO line number when it gives one that exists, else by
SKU (ours or the supplier's, compared after trimming and Unicode NFC); several PO lines with one
SKU are filled in line order. A notice with no lines means the whole purchase order shipped.
Nothing beyond what was ordered is ever applied: the excess is reported. A line that matches
nothing makes the notice unusable (it is quarantined whole, never half-applied).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PoLine:
    """A purchase-order line as the supplier was sent it, with what has shipped so far."""

    line_number: int
    order_line_id: str
    sku: str | None
    supplier_sku: str | None
    ordered: int
    shipped: int

    @property
    def remaining(self) -> int:
        return max(0, self.ordered - self.shipped)


@dataclass(frozen=True)
class NoticeLine:
    line_number: int | None
    sku: str | None
    supplier_sku: str | None
    quantity: int


@dataclass
class Allocation:
    """What to apply: quantity per PO line number; and what could not be applied."""

    quantities: dict[int, int] = field(default_factory=dict)
    excess: list[str] = field(default_factory=list)      # applied up to the order; the rest
    unmatched: list[str] = field(default_factory=list)   # makes the notice unusable

    @property
    def total(self) -> int:
        return sum(self.quantities.values())


def allocate(lines: list[NoticeLine], po_lines: list[PoLine]) -> Allocation:
    """Spread a notice's lines over the purchase order's lines (see the module docstring)."""
    result = Allocation()
    left = {line.line_number: line.remaining for line in po_lines}
    if not lines:  # the whole purchase order shipped
        for line in po_lines:
            if left[line.line_number] > 0:
                result.quantities[line.line_number] = left[line.line_number]
        return result
    by_number = {line.line_number: line for line in po_lines}
    for item in lines:
        targets = _targets(item, po_lines, by_number)
        label = _label(item)
        if not targets:
            result.unmatched.append(f"{label} is not on the purchase order")
            continue
        wanted = item.quantity
        for target in targets:
            take = min(wanted, left[target.line_number])
            if take:
                left[target.line_number] -= take
                result.quantities[target.line_number] = (
                    result.quantities.get(target.line_number, 0) + take)
                wanted -= take
        if wanted:
            result.excess.append(f"{label}: {wanted} more than ordered and not yet shipped "
                                 f"(notice says {item.quantity})")
    return result


def _targets(item: NoticeLine, po_lines: list[PoLine], by_number: dict[int, PoLine]
             ) -> list[PoLine]:
    if item.line_number is not None and item.line_number in by_number:
        line = by_number[item.line_number]
        if item.sku is None and item.supplier_sku is None:
            return [line]
        if _same(item.sku, line.sku, line.supplier_sku) or _same(
                item.supplier_sku, line.sku, line.supplier_sku):
            return [line]
    codes = {c for c in (_norm(item.sku), _norm(item.supplier_sku)) if c}
    return [line for line in sorted(po_lines, key=lambda pl: pl.line_number)
            if codes & {c for c in (_norm(line.sku), _norm(line.supplier_sku)) if c}]


def _same(code: str | None, *candidates: str | None) -> bool:
    norm = _norm(code)
    return norm is not None and norm in {_norm(c) for c in candidates}


def _norm(code: str | None) -> str | None:
    if code is None:
        return None
    text = unicodedata.normalize("NFC", code).strip().casefold()
    return text or None


def _label(item: NoticeLine) -> str:
    parts = []
    if item.line_number is not None:
        parts.append(f"line {item.line_number}")
    if item.sku or item.supplier_sku:
        parts.append(f"SKU {item.sku or item.supplier_sku}")
    return " / ".join(parts) or "a line without number or SKU"
