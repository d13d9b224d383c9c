"""Which fulfillment-order lines a shipment covers: splits across fulfillment orders, one group
per location, and what is left over reported rather than dropped."""

from __future__ import annotations

import pytest

from app.channels.shopify_fulfillment import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    Tracking,
    plan_fulfillment,
)

BED, SOIL = "14511244968123", "14511244968124"
WAREHOUSE, STORE = "gid://shopify/Location/1", "gid://shopify/Location/2"


def fo(n: int, status: str, location: str | None,
       *lines: tuple[str, int]) -> FulfillmentOrder:
    return FulfillmentOrder(
        id=f"gid://shopify/FulfillmentOrder/{n}", status=status, location_id=location,
        lines=tuple(FulfillmentOrderLine(id=f"gid://shopify/FulfillmentOrderLineItem/{n}{i}",
                                         line_item_id=line, sku=None, remaining_quantity=qty,
                                         total_quantity=qty)
                    for i, (line, qty) in enumerate(lines)))


def test_a_line_split_over_two_fulfillment_orders_at_one_location_is_one_group() -> None:
    plan = plan_fulfillment([fo(1, "OPEN", WAREHOUSE, (BED, 1)),
                             fo(2, "OPEN", WAREHOUSE, (BED, 2))], [(BED, 3)])

    assert len(plan.groups) == 1
    assert plan.groups[0].as_input() == [
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
         "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/10",
                                        "quantity": 1}]},
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/2",
         "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/20",
                                        "quantity": 2}]},
    ]
    assert plan.groups[0].line_quantities == ((BED, 3),)


def test_locations_make_separate_groups_in_first_seen_order() -> None:
    plan = plan_fulfillment([fo(1, "OPEN", STORE, (SOIL, 1)),
                             fo(2, "IN_PROGRESS", WAREHOUSE, (BED, 2))],
                            [(BED, 2), (SOIL, 1)])

    assert [g.location_id for g in plan.groups] == [WAREHOUSE, STORE]
    assert [g.line_quantities for g in plan.groups] == [((BED, 2),), ((SOIL, 1),)]


def test_closed_and_cancelled_fulfillment_orders_are_skipped() -> None:
    plan = plan_fulfillment([fo(1, "CLOSED", WAREHOUSE, (BED, 0)),
                             fo(2, "CANCELLED", WAREHOUSE, (BED, 2))], [(BED, 2)])

    assert plan.groups == ()
    assert plan.excess == ((BED, 2),)
    assert (plan.unknown, plan.blocked) == ((), ())


def test_on_hold_quantity_is_blocked_not_excess() -> None:
    plan = plan_fulfillment([fo(1, "OPEN", WAREHOUSE, (BED, 1)),
                             fo(2, "ON_HOLD", STORE, (BED, 1))], [(BED, 3)])

    assert [g.line_quantities for g in plan.groups] == [((BED, 1),)]
    assert plan.blocked == ((BED, 1, "ON_HOLD"),)
    assert plan.excess == ((BED, 1),)


def test_lines_named_twice_and_as_gid_are_summed() -> None:
    plan = plan_fulfillment([fo(1, "OPEN", WAREHOUSE, (BED, 5))],
                            [(BED, 1), (f"gid://shopify/LineItem/{BED}", 2)])

    assert plan.groups[0].line_quantities == ((BED, 3),)


def test_quantity_under_the_same_tracking_number_counts_as_done() -> None:
    plan = plan_fulfillment([fo(1, "OPEN", WAREHOUSE, (BED, 1), (SOIL, 1))],
                            [(BED, 2), (SOIL, 1)], already_shipped={BED: 1})

    assert plan.already_shipped == ((BED, 1),)
    assert plan.groups[0].line_quantities == ((BED, 1), (SOIL, 1))


def test_unknown_lines_are_reported() -> None:
    plan = plan_fulfillment([fo(1, "OPEN", WAREHOUSE, (BED, 1))], [("42", 1), (BED, 1)])

    assert plan.unknown == ("42",)
    assert plan.groups[0].line_quantities == ((BED, 1),)


@pytest.mark.parametrize("quantity", [0, -1, True])
def test_quantities_must_be_whole_and_positive(quantity: int) -> None:
    with pytest.raises(ValueError, match="quantity"):
        plan_fulfillment([], [(BED, quantity)])


def test_tracking_input_leaves_out_empty_fields() -> None:
    assert Tracking(company=" UPS ", number="", url=None).as_input() == {"company": "UPS"}
