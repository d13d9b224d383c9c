"""The availability rule, as the stock issue states it:

    available = max(0, min(channel max, floor((Σ feed quantities − reserved) × percent)
                                        − buffer))

with settings from the global default, then the channel, then the SKU (on every channel, then on
that channel), and 0 for a SKU no feed lists.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from stock.availability import (
    INHERIT,
    ChannelRule,
    RuleOverride,
    available,
    layer_rules,
    resolve_rule,
)

ALL = ChannelRule()


def test_by_default_a_channel_may_sell_what_is_not_reserved() -> None:
    assert (ALL.buffer, ALL.percent, ALL.max) == (0, Decimal(100), None)
    assert available(40, 0, ALL) == 40
    assert available(40, 15, ALL) == 25
    assert available(0, 0, ALL) == 0


def test_a_sku_no_feed_lists_is_not_available() -> None:
    assert available(None, 0, ALL) == 0
    assert available(None, 0, ChannelRule(percent=Decimal(100), max=5)) == 0


def test_the_buffer_is_held_back_after_the_percent() -> None:
    rule = ChannelRule(buffer=2, percent=Decimal(50))

    assert available(20, 0, rule) == 8        # floor(20 × 50 %) − 2
    assert available(4, 0, rule) == 0         # 2 − 2
    assert available(3, 0, rule) == 0         # floor(1.5) − 2 = −1 → 0


@pytest.mark.parametrize(("total", "percent", "expected"), [
    (10, "80", 8),
    (9, "80", 7),           # 7.2 rounds down
    (3, "33.33", 0),        # 0.9999: never rounds up into an oversell
    (300, "33.33", 99),     # 99.99
    (7, "100", 7),
    (7, "0", 0),            # a channel switched off
    (1, "99.9999", 0),
])
def test_percent_is_a_percentage_and_the_share_is_floored(total: int, percent: str,
                                                          expected: int) -> None:
    assert available(total, 0, ChannelRule(percent=Decimal(percent))) == expected


def test_max_caps_what_the_channel_shows() -> None:
    rule = ChannelRule(buffer=1, max=5)

    assert available(100, 0, rule) == 5
    assert available(4, 0, rule) == 3
    assert available(100, 0, ChannelRule(max=0)) == 0


def test_more_reserved_than_in_stock_is_zero_never_negative() -> None:
    assert available(3, 5, ALL) == 0
    # floor((3 − 6) × 50 %) = floor(−1.5) = −2, and −2 − 0 → 0, also with a max.
    assert available(3, 6, ChannelRule(percent=Decimal(50), max=10)) == 0


def test_the_rule_is_the_issues_formula_for_every_small_case() -> None:
    import math

    for total in range(0, 30):
        for reserved in range(0, 12):
            for buffer in (0, 1, 3):
                for percent in (Decimal(0), Decimal(25), Decimal("66.6"), Decimal(100)):
                    for cap in (None, 0, 4):
                        rule = ChannelRule(buffer=buffer, percent=percent, max=cap)
                        inner = math.floor((total - reserved) * percent / 100) - buffer
                        expected = max(0, inner if cap is None else min(cap, inner))
                        assert available(total, reserved, rule) == expected


@pytest.mark.parametrize("settings", [
    {"buffer": -1}, {"buffer": 1.5}, {"buffer": True}, {"max": -3},
    {"percent": Decimal(101)}, {"percent": Decimal(-1)}, {"percent": Decimal("NaN")},
    {"percent": 0.8},
])
def test_nonsense_settings_are_refused_when_made(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ChannelRule(**settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RuleOverride(**settings)  # type: ignore[arg-type]


def test_an_int_percent_is_kept_as_a_decimal() -> None:
    rule = ChannelRule(percent=80)  # type: ignore[arg-type]
    assert rule.percent == Decimal(80) and isinstance(rule.percent, Decimal)


@pytest.mark.parametrize(("total", "reserved"), [(-1, 0), (5, -1)])
def test_negative_inputs_are_a_bug(total: int, reserved: int) -> None:
    with pytest.raises(ValueError):
        available(total, reserved, ALL)


# ---------------------------------------------------------------- settings


GLOBAL = ChannelRule(buffer=1, percent=Decimal(90), max=None)
PER_CHANNEL = {
    "shopify": RuleOverride(percent=Decimal(100)),
    "ebay": RuleOverride(buffer=3, max=20),
}
PER_SKU = {
    ("AG-BED-CED-L", None): RuleOverride(max=4),
    ("AG-BED-CED-L", "ebay"): RuleOverride(max=None),
    ("AG-TRWL", "shopify"): RuleOverride(buffer=0, percent=Decimal(50)),
}


@pytest.mark.parametrize(("channel", "sku", "expected"), [
    # Only the global default.
    ("amazon", "AG-SEEDS", ChannelRule(buffer=1, percent=Decimal(90), max=None)),
    # The channel overrides what it sets and keeps the rest.
    ("shopify", "AG-SEEDS", ChannelRule(buffer=1, percent=Decimal(100), max=None)),
    ("ebay", "AG-SEEDS", ChannelRule(buffer=3, percent=Decimal(90), max=20)),
    # The SKU on every channel over the channel...
    ("shopify", "AG-BED-CED-L", ChannelRule(buffer=1, percent=Decimal(100), max=4)),
    ("amazon", "AG-BED-CED-L", ChannelRule(buffer=1, percent=Decimal(90), max=4)),
    # ...and the SKU on this channel over both: here it lifts the max again.
    ("ebay", "AG-BED-CED-L", ChannelRule(buffer=3, percent=Decimal(90), max=None)),
    ("shopify", "AG-TRWL", ChannelRule(buffer=0, percent=Decimal(50), max=None)),
    ("ebay", "AG-TRWL", ChannelRule(buffer=3, percent=Decimal(90), max=20)),
])
def test_settings_resolve_global_then_channel_then_sku(channel: str, sku: str,
                                                       expected: ChannelRule) -> None:
    assert resolve_rule(GLOBAL, PER_CHANNEL, PER_SKU, channel, sku) == expected


def test_an_override_that_sets_nothing_changes_nothing() -> None:
    assert RuleOverride() == RuleOverride(buffer=INHERIT, percent=INHERIT, max=INHERIT)
    assert RuleOverride().over(GLOBAL) == GLOBAL


def test_layers_may_also_be_complete_rules() -> None:
    whole = ChannelRule(buffer=5, percent=Decimal(10), max=1)

    assert layer_rules(GLOBAL, None, whole, RuleOverride(max=2)) == ChannelRule(5, Decimal(10), 2)
    assert layer_rules(GLOBAL) == GLOBAL


def test_resolved_rules_give_each_channel_its_quantity() -> None:
    def quantity(channel: str, sku: str) -> int:
        return available(30, 2, resolve_rule(GLOBAL, PER_CHANNEL, PER_SKU, channel, sku))

    assert quantity("amazon", "AG-SEEDS") == 24       # floor(28 × 90 %) − 1 = 25 − 1
    assert quantity("shopify", "AG-SEEDS") == 27      # 28 − 1
    assert quantity("ebay", "AG-SEEDS") == 20         # min(20, 25 − 3)
    assert quantity("shopify", "AG-BED-CED-L") == 4
    assert quantity("ebay", "AG-BED-CED-L") == 22     # 25 − 3, no max
    assert quantity("shopify", "AG-TRWL") == 14       # floor(28 × 50 %) − 0
