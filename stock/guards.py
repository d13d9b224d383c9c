"""The safety guards on a supplier's stock feed: pure decisions, applied per supplier before
any quantity of a feed is used.

- Staleness (`is_stale`): a feed older than the supplier's `max_feed_age` is not trusted. Its
  age is counted from the `as_of` the feed states, else from the file's modification time
  (`feed_time`); what happens to its SKUs (held at their last good value, or set to zero) is
  the caller's setting.
- Sudden drops (`drop_guard`): a feed that would take total stock down by more than half, or
  send more than a quarter of the SKUs in stock to zero, is more likely a broken export (a
  truncated file, a filter left on) than a sell-out; it is held for an operator to accept.

A feed lists a supplier's whole stock: a SKU the previous feed had and the new one does not
is read as 0 (the supplier no longer has it), so it counts towards both the drop and the SKUs
gone to zero. SKUs that only the new feed has add to its total and are otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Final

MAX_TOTAL_DROP: Final = 0.5   # hold a feed that drops total stock by more than this share
MAX_ZERO_FLIP: Final = 0.25   # ... or sends more than this share of in-stock SKUs to zero
EXAMPLES: Final = 10          # SKUs named in a verdict, for the alert


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time would be read in the host's zone: the verdict would depend on the server.
        raise ValueError(f"{what} {moment.isoformat()} has no time zone")
    return moment


def feed_time(as_of: datetime | None, mtime: datetime) -> datetime:
    """When a feed was taken: the `as_of` it states, else its file's modification time (a
    file copied or re-uploaded later looks newer than its content is)."""
    return _aware(as_of, "as_of") if as_of is not None else _aware(mtime, "mtime")


def is_stale(as_of_or_mtime: datetime, now: datetime, max_age: timedelta) -> bool:
    """True when the feed taken at `as_of_or_mtime` is older than `max_age` at `now`. Exactly
    `max_age` old is still fresh; a time in the future (clocks disagree) is not stale."""
    if max_age < timedelta(0):
        raise ValueError(f"max_age must not be negative, not {max_age}")
    age = _aware(now, "now") - _aware(as_of_or_mtime, "as_of_or_mtime")
    return age > max_age


@dataclass(frozen=True)
class GuardVerdict:
    """Whether a feed is held, why, and the figures an operator needs to decide."""

    held: bool
    reason: str | None             # one sentence per guard that tripped; None when not held
    total_before: int              # units in the previous feed
    total_after: int               # units in the new feed
    flipped_to_zero: int           # SKUs in stock before, 0 or absent now
    skus: int                      # SKUs in stock before (what flipped_to_zero is a share of)
    examples: tuple[str, ...] = ()  # the first few SKUs flipped to zero, sorted


def _share(value: float | Fraction, what: str) -> Fraction:
    if isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{what} must be a share from 0 to 1, not {value!r}")
    # Through str: 0.1 is meant as one tenth, not as the binary float nearest to it.
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _percent(share: Fraction) -> str:
    """62.5 %, 50 %: one decimal, none when whole (so 50.4 % never reads as "50 %")."""
    percent = share * 100
    return f"{percent.numerator // percent.denominator} %" if percent.denominator == 1 else (
        f"{float(percent):.1f} %")


def drop_guard(previous: Mapping[str, int], current: Mapping[str, int], *,
               max_total_drop: float | Fraction = MAX_TOTAL_DROP,
               max_zero_flip: float | Fraction = MAX_ZERO_FLIP) -> GuardVerdict:
    """Hold `current` (SKU -> units, all warehouses added up) if, against `previous` (the
    last good feed), total stock drops by more than `max_total_drop` or more than
    `max_zero_flip` of the SKUs in stock go to zero. "More than": exactly half is not held.

    Never held: a first feed (`previous` empty), or one after a feed with nothing in stock
    (no share of nothing can be lost)."""
    total_drop = _share(max_total_drop, "max_total_drop")
    zero_flip = _share(max_zero_flip, "max_zero_flip")
    for sku, quantity in (*previous.items(), *current.items()):
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise ValueError(f"quantity of {sku!r} must be a whole number, 0 or more, "
                             f"not {quantity!r}")
    before, after = sum(previous.values()), sum(current.values())
    in_stock = [sku for sku, quantity in previous.items() if quantity > 0]
    flipped = sorted(sku for sku in in_stock if current.get(sku, 0) == 0)
    reasons = []
    if before > 0 and Fraction(before - after, before) > total_drop:
        reasons.append(f"total stock would drop by {_percent(Fraction(before - after, before))} "
                       f"({before} to {after} units), more than the "
                       f"{_percent(total_drop)} allowed")
    if in_stock and Fraction(len(flipped), len(in_stock)) > zero_flip:
        reasons.append(f"{len(flipped)} of the {len(in_stock)} SKUs in stock "
                       f"({_percent(Fraction(len(flipped), len(in_stock)))}) would go to zero "
                       f"or be missing, more than the {_percent(zero_flip)} allowed")
    return GuardVerdict(
        held=bool(reasons),
        reason="; ".join(reasons) or None,
        total_before=before,
        total_after=after,
        flipped_to_zero=len(flipped),
        skus=len(in_stock),
        examples=tuple(flipped[:EXAMPLES]),
    )
