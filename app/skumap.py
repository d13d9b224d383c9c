"""The explicit SKU map: which supplier carries a SKU, as `sku, supplier, supplier_sku, cost,
priority` rows imported from CSV. A file with any bad row imports nothing."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import SkuMapEntry
from app.suppliers import SupplierBook, normalize_sku

COLUMNS = ("sku", "supplier", "supplier_sku", "cost", "priority")
DEFAULT_PRIORITY = 100


@dataclass(frozen=True)
class SkuRow:
    sku: str
    supplier: str
    supplier_sku: str | None
    cost: Decimal | None
    priority: int


def parse_sku_csv(stream: TextIO, book: SupplierBook) -> tuple[list[SkuRow], list[str]]:
    """Parse and check every row; returns (rows, errors with their line numbers)."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return [], ["line 1: the file is empty (a header row is required)"]
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [c for c in ("sku", "supplier") if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        return [], [f"line 1: header {', '.join(problems)} "
                    f"(expected: {', '.join(COLUMNS)})"]
    rows: list[SkuRow] = []
    errors: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for line_no, raw in enumerate(reader, start=2):
        if not any(cell.strip() for cell in raw):
            continue
        if len(raw) != len(names):
            errors.append(f"line {line_no}: {len(raw)} fields, the header has {len(names)}")
            continue
        cells = dict(zip(names, (c.strip() for c in raw), strict=True))
        row_errors: list[str] = []
        sku = normalize_sku(cells.get("sku"))
        if sku is None:
            row_errors.append("sku is empty")
        supplier = cells.get("supplier", "")
        if book.get(supplier) is None:
            row_errors.append(f"supplier {supplier!r} is not in suppliers.toml")
        cost: Decimal | None = None
        if cells.get("cost"):
            try:
                cost = Decimal(cells["cost"])
                if not cost.is_finite() or cost < 0:
                    raise InvalidOperation
            except InvalidOperation:
                row_errors.append(f"cost {cells['cost']!r} is not an amount >= 0")
        priority = DEFAULT_PRIORITY
        if cells.get("priority"):
            try:
                priority = int(cells["priority"])
            except ValueError:
                row_errors.append(f"priority {cells['priority']!r} is not a whole number")
        if sku is not None and (sku, supplier) in seen:
            row_errors.append(f"sku {sku!r} for {supplier} repeats line {seen[(sku, supplier)]}")
        if row_errors:
            errors.append(f"line {line_no}: " + "; ".join(row_errors))
            continue
        assert sku is not None
        seen[(sku, supplier)] = line_no
        rows.append(SkuRow(sku, supplier, cells.get("supplier_sku") or None, cost, priority))
    return rows, errors


def import_sku_rows(session: Session, rows: Iterable[SkuRow]) -> tuple[int, int]:
    """Insert or update the rows (one per SKU and supplier); returns (added, updated)."""
    rows = list(rows)
    skus = sorted({r.sku for r in rows})
    existing: dict[tuple[str, str], SkuMapEntry] = {}
    for start in range(0, len(skus), 500):  # stay far below SQLite's bound-parameter limit
        chunk = skus[start:start + 500]
        for e in session.execute(select(SkuMapEntry).where(SkuMapEntry.sku.in_(chunk))).scalars():
            existing[(e.sku, e.supplier)] = e
    added = updated = 0
    for row in rows:
        entry = existing.get((row.sku, row.supplier))
        if entry is None:
            session.add(SkuMapEntry(sku=row.sku, supplier=row.supplier,
                                    supplier_sku=row.supplier_sku, cost=row.cost,
                                    priority=row.priority))
            added += 1
        else:
            entry.supplier_sku, entry.cost, entry.priority = (
                row.supplier_sku, row.cost, row.priority)
            updated += 1
    return added, updated
