"""The availability rule's settings from the environment: a global default and per-channel
overrides (`STOCK_BUFFER`, `STOCK_PERCENT`, `STOCK_MAX`, and `STOCK_BUFFER_SHOPIFY` etc. for
one channel). Per-SKU overrides are set on the SKU's listing (`PATCH /api/inventory/<sku>`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

from app.errors import ConfigError
from stock.availability import INHERIT, ChannelRule, RuleOverride
from stock.levels import StockRules


def stock_rules_from_env(env: Mapping[str, str], channels: Iterable[str]) -> StockRules:
    """Read the rule settings; a bad value stops the start with its name."""
    percent = _percent(env, "STOCK_PERCENT")
    default = ChannelRule(buffer=_count(env, "STOCK_BUFFER") or 0,
                          percent=Decimal(100) if percent is None else percent,
                          max=_count(env, "STOCK_MAX"))
    per_channel: dict[str, RuleOverride] = {}
    for channel in channels:
        suffix = channel.upper()
        buffer = _count(env, f"STOCK_BUFFER_{suffix}")
        percent = _percent(env, f"STOCK_PERCENT_{suffix}")
        maximum = _count(env, f"STOCK_MAX_{suffix}")
        if buffer is None and percent is None and maximum is None:
            continue
        per_channel[channel] = RuleOverride(
            buffer=buffer if buffer is not None else INHERIT,
            percent=percent if percent is not None else INHERIT,
            max=maximum if maximum is not None else INHERIT)
    return StockRules(default=default, per_channel=per_channel)


def _count(env: Mapping[str, str], name: str) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ConfigError(name, f"{raw!r} is not a whole number of units (0 or more)")
    return int(raw)


def _percent(env: Mapping[str, str], name: str) -> Decimal | None:
    raw = (env.get(name) or "").strip().rstrip("%")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(name, f"{raw!r} is not a percentage (0 to 100)") from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise ConfigError(name, f"{raw!r} is not a percentage between 0 and 100")
    return value
