"""The availability rule: how many units of one SKU one channel may sell.

    available(sku, channel) = max(0, min(channel max,
                                         floor((Σ supplier feed quantities − reserved)
                                               × channel percent)
                                         − channel buffer))

- Σ supplier feed quantities: the SKU's quantities in every supplier's last good feed, all
  warehouses added up (`feed_total`).
- reserved: units of the SKU in routed orders the supplier has not yet confirmed shipped.
- percent: the share of the rest a channel may offer, written as a percentage from 0 to 100
  (`Decimal("80")` is 80 %; `Decimal("33.5")` is allowed). Percentages are what an operator
  types in a settings file, and a value like 0.8 next to 80 would be an easy mistake, so values
  above 100 are refused rather than read as fractions.
- floor: rounds down, also below zero (floor(-0.5) = -1); anything below zero becomes 0 last.
- buffer: units kept back on that channel; max: the most it may ever show (None: no limit).

Settings come in three layers, each overriding only what it sets: the global default, then the
channel's, then the SKU's on every channel, then the SKU's on that channel (`resolve_rule`).

A SKU that no feed lists (`feed_total` None) is not available anywhere: 0. Selling what no
supplier has confirmed is exactly the oversell this rule exists to prevent; an operator who
wants to sell such a SKU sets a manual quantity instead.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Context, Decimal
from typing import Final

# Exact for any quantity a feed can give (feed quantities are bounded, percent at most 100).
_EXACT: Final = Context(prec=60)
HUNDRED: Final = Decimal(100)


class Inherit(enum.Enum):
    """Marks a setting an override leaves to the layer below."""

    INHERIT = "inherit"


INHERIT: Final = Inherit.INHERIT


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number, 0 or more, not {value!r}")
    return value


def _percent(value: object) -> Decimal:
    # A float would carry binary noise (0.1 is 0.1000000000000000055...): Decimal or int only.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(f"percent must be a Decimal or int from 0 to 100, not {value!r}")
    percent = Decimal(value)
    if not percent.is_finite() or not 0 <= percent <= HUNDRED:
        raise ValueError(f"percent must be from 0 to 100, not {value}")
    return percent


@dataclass(frozen=True)
class ChannelRule:
    """The settings of one SKU on one channel, once resolved."""

    buffer: int = 0                   # units held back
    percent: Decimal = HUNDRED        # share offered, 0 to 100
    max: int | None = None            # at most this many; None: no limit

    def __post_init__(self) -> None:
        _count(self.buffer, "buffer")
        object.__setattr__(self, "percent", _percent(self.percent))
        if self.max is not None:
            _count(self.max, "max")


@dataclass(frozen=True)
class RuleOverride:
    """The settings one layer (a channel, a SKU) changes; `INHERIT` keeps the layer below.
    For `max`, None means "no limit" (it removes a max set below)."""

    buffer: int | Inherit = INHERIT
    percent: Decimal | Inherit = INHERIT
    max: int | None | Inherit = INHERIT

    def __post_init__(self) -> None:  # a wrong setting is refused when read, not when used
        if self.buffer is not INHERIT:
            _count(self.buffer, "buffer")
        if self.percent is not INHERIT:
            object.__setattr__(self, "percent", _percent(self.percent))
        if self.max is not INHERIT and self.max is not None:
            _count(self.max, "max")

    def over(self, rule: ChannelRule) -> ChannelRule:
        """`rule` with what this override sets."""
        return replace(
            rule,
            buffer=rule.buffer if self.buffer is INHERIT else self.buffer,
            percent=rule.percent if self.percent is INHERIT else self.percent,
            max=rule.max if self.max is INHERIT else self.max,
        )


def resolve_rule(global_: ChannelRule, per_channel: Mapping[str, RuleOverride],
                 per_sku: Mapping[tuple[str, str | None], RuleOverride], channel: str,
                 sku: str) -> ChannelRule:
    """The rule for `sku` on `channel`: the global default, overridden by the channel's
    settings, then by the SKU's on every channel (key `(sku, None)`), then by the SKU's on
    this channel (key `(sku, channel)`)."""
    return layer_rules(global_, per_channel.get(channel), per_sku.get((sku, None)),
                       per_sku.get((sku, channel)))


def layer_rules(global_: ChannelRule, *layers: ChannelRule | RuleOverride | None) -> ChannelRule:
    """`global_` with each layer applied in turn: a `RuleOverride` changes what it sets, a
    `ChannelRule` replaces the whole rule (settings given complete), None changes nothing."""
    rule = global_
    for layer in layers:
        if isinstance(layer, ChannelRule):
            rule = layer
        elif layer is not None:
            rule = layer.over(rule)
    return rule


def available(feed_total: int | None, reserved: int, rule: ChannelRule) -> int:
    """Units the channel may sell: max(0, min(max, floor((feed_total − reserved) × percent)
    − buffer)); 0 when no feed lists the SKU (`feed_total` None)."""
    if feed_total is None:
        return 0
    _count(feed_total, "feed_total")
    _count(reserved, "reserved")
    share = _EXACT.divide(_EXACT.multiply(Decimal(feed_total - reserved), rule.percent),
                          HUNDRED)
    quantity = math.floor(share) - rule.buffer
    if rule.max is not None:
        quantity = min(rule.max, quantity)
    return max(0, quantity)
