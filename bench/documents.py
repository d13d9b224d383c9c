"""Cost of rendering + validating one purchase order, per format (the routing issue's figure).

    .venv/bin/python bench/documents.py [--rounds 2000]

Renders a 3-line order (2 lines for one supplier, 1 for another: what the ingest bench's
orders become) in each format, validates it against its schema, and prints milliseconds per
document and per order, best of 5 rounds. Schemas are loaded once before timing, as in a
running worker.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from app.documents import render_document
from app.documents.model import Contact, Party, PoLine, PostalAddress, PurchaseOrderDoc


def sample(lines: int) -> PurchaseOrderDoc:
    """A purchase order shaped like one made from the Shopify fixture order."""
    return PurchaseOrderDoc(
        po_number="shopify-1042-agriest", version=1, action="new",
        issued_at=datetime(2026, 11, 20, 14, 15, 3, tzinfo=UTC), order_number="#1042",
        order_placed_at=datetime(2026, 11, 20, 14, 14, 3, tzinfo=UTC), currency="USD",
        buyer=Party("garden-goods", "Garden Goods"), supplier=Party("agriest", "Agriest"),
        ship_to=PostalAddress(name="Maria Schmidt", address1="2259 Park Ct",
                              address2="Apartment 5", city="Drayton Valley", region="Alberta",
                              region_code="AB", postal_code="T0E 0M0", country_code="CA",
                              country="Canada", phone="780-555-0176"),
        contact=Contact(name="Maria Schmidt", email="maria.schmidt@example.com"),
        lines=tuple(
            PoLine(line_number=i + 1, sku=f"AG-BED-{i}", supplier_sku=f"A-{900 + i}",
                   title="Raised Garden Bed", quantity=2, unit_price=Decimal("41.50"))
            for i in range(lines)
        ),
        notes="Please leave at the back door.",
        payload_id="shopify-1042-agriest.v1@orderhub",
    )


def per_document_ms(fmt: str, doc: PurchaseOrderDoc, rounds: int) -> float:
    render_document(fmt, doc)  # loads the schema
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            render_document(fmt, doc)
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    two, one = sample(2), sample(1)
    print(f"{'format':10} {'2-line PO':>10} {'1-line PO':>10} {'order (2 POs)':>14}")
    for fmt in ("orderhub", "cxml", "ubl"):
        a, b = per_document_ms(fmt, two, args.rounds), per_document_ms(fmt, one, args.rounds)
        print(f"{fmt:10} {a:9.3f}ms {b:9.3f}ms {a + b:12.3f}ms")


if __name__ == "__main__":
    main()
