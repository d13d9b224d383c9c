"""Which purchase-order lines a shipment notice covers: pure rules, no I/O."""

from __future__ import annotations

from shipment.matching import NoticeLine, PoLine, allocate

PO = [
    PoLine(1, "l1", "AG-BED-CED-L", "AGR-55012", ordered=2, shipped=0),
    PoLine(2, "l2", "AG-TRWL", None, ordered=1, shipped=0),
    PoLine(3, "l3", "AG-BED-CED-L", "AGR-55012", ordered=3, shipped=1),
]


def test_no_lines_means_the_whole_purchase_order_shipped() -> None:
    result = allocate([], PO)
    assert result.quantities == {1: 2, 2: 1, 3: 2}
    assert result.excess == [] and result.unmatched == []


def test_by_line_number_then_by_sku_in_line_order() -> None:
    result = allocate([NoticeLine(2, None, None, 1),
                       NoticeLine(None, "ag-bed-ced-l ", None, 3)], PO)
    assert result.quantities == {2: 1, 1: 2, 3: 1}


def test_supplier_sku_matches_too() -> None:
    assert allocate([NoticeLine(None, None, "AGR-55012", 1)], PO).quantities == {1: 1}


def test_never_more_than_ordered_and_not_yet_shipped() -> None:
    result = allocate([NoticeLine(3, "AG-BED-CED-L", None, 5)], PO)
    assert result.quantities == {3: 2}
    assert result.excess == ["line 3 / SKU AG-BED-CED-L: 3 more than ordered and not yet "
                             "shipped (notice says 5)"]


def test_a_line_number_with_another_sku_falls_back_to_the_sku() -> None:
    assert allocate([NoticeLine(2, "AG-BED-CED-L", None, 1)], PO).quantities == {1: 1}


def test_an_unknown_sku_makes_the_notice_unusable() -> None:
    result = allocate([NoticeLine(None, "GS-SOIL-40", None, 1), NoticeLine(2, None, None, 1)],
                      PO)
    assert result.unmatched == ["SKU GS-SOIL-40 is not on the purchase order"]


def test_everything_shipped_already_is_all_excess() -> None:
    done = [PoLine(1, "l1", "AG-TRWL", None, ordered=1, shipped=1)]
    result = allocate([NoticeLine(1, None, None, 1)], done)
    assert result.total == 0 and result.excess
    assert allocate([], done).quantities == {}
