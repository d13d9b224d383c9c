"""The safety guards on a supplier's stock feed: staleness, and the hold on a feed that would
drop total stock by more than half or send more than a quarter of the SKUs in stock to zero."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest

from stock.guards import GuardVerdict, drop_guard, feed_time, is_stale
from tests.unit.helpers import utc

NOW = utc(2026, 11, 23, 12)
DAY = timedelta(hours=24)


# ---------------------------------------------------------------- staleness


@pytest.mark.parametrize(("taken", "stale"), [
    (NOW - DAY - timedelta(seconds=1), True),
    (NOW - DAY, False),                     # exactly max_age old is still fresh
    (NOW - timedelta(hours=1), False),
    (NOW + timedelta(minutes=5), False),    # the supplier's clock runs ahead: not stale
    (datetime(2026, 11, 22, 12, 59, tzinfo=timezone(timedelta(hours=1))), True),  # 11:59 UTC
])
def test_a_feed_older_than_max_age_is_stale(taken: datetime, stale: bool) -> None:
    assert is_stale(taken, NOW, DAY) is stale


def test_naive_times_and_negative_ages_are_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        is_stale(datetime(2026, 11, 23, 6), NOW, DAY)
    with pytest.raises(ValueError, match="has no time zone"):
        is_stale(NOW, datetime(2026, 11, 23, 12), DAY)
    with pytest.raises(ValueError, match="must not be negative"):
        is_stale(NOW, NOW, -DAY)


def test_the_feeds_own_as_of_wins_over_the_files_mtime() -> None:
    as_of, mtime = utc(2026, 11, 20, 6), utc(2026, 11, 23, 11)  # re-uploaded, old content

    assert feed_time(as_of, mtime) == as_of
    assert is_stale(feed_time(as_of, mtime), NOW, DAY)
    assert feed_time(None, mtime) == mtime
    with pytest.raises(ValueError):
        feed_time(None, datetime(2026, 11, 23))


# ---------------------------------------------------------------- sudden drops


def test_a_first_feed_is_never_held() -> None:
    verdict = drop_guard({}, {"AE-1": 0, "AE-2": 5})

    assert verdict == GuardVerdict(held=False, reason=None, total_before=0, total_after=5,
                                   flipped_to_zero=0, skus=0)


def test_an_ordinary_feed_passes() -> None:
    previous = {"AE-1": 10, "AE-2": 10, "AE-3": 10, "AE-4": 10}
    current = {"AE-1": 8, "AE-2": 12, "AE-3": 0, "AE-4": 10, "AE-5": 3}

    verdict = drop_guard(previous, current)

    assert not verdict.held and verdict.reason is None
    assert (verdict.total_before, verdict.total_after) == (40, 33)
    assert (verdict.flipped_to_zero, verdict.skus, verdict.examples) == (1, 4, ("AE-3",))


def test_a_drop_of_more_than_half_is_held() -> None:
    previous = {"AE-1": 100, "AE-2": 100}

    verdict = drop_guard(previous, {"AE-1": 40, "AE-2": 59})

    assert verdict.held
    assert verdict.reason == ("total stock would drop by 50.5 % (200 to 99 units), more than "
                              "the 50 % allowed")
    # Exactly half is not more than half.
    assert not drop_guard(previous, {"AE-1": 40, "AE-2": 60}).held


def test_more_than_a_quarter_of_skus_going_to_zero_is_held() -> None:
    previous = {f"AE-{n}": 10 for n in range(8)} | {"AE-OUT": 0}
    two_out = {f"AE-{n}": 10 for n in range(2, 8)} | {"AE-0": 0, "AE-1": 0}
    three_out = two_out | {"AE-2": 0, "AE-3": 30, "AE-4": 20}  # total stays the same

    assert not drop_guard(previous, two_out).held  # 2 of 8: exactly a quarter

    verdict = drop_guard(previous, three_out)

    assert verdict.held
    assert verdict.total_before == verdict.total_after == 80
    assert verdict.reason == ("3 of the 8 SKUs in stock (37.5 %) would go to zero or be "
                              "missing, more than the 25 % allowed")
    assert verdict.examples == ("AE-0", "AE-1", "AE-2")


def test_a_sku_missing_from_the_new_feed_counts_as_zero() -> None:
    # A truncated export: the file ends after the first SKUs.
    previous = {f"AE-{n:02d}": 5 for n in range(40)}
    current = {f"AE-{n:02d}": 5 for n in range(10)}

    verdict = drop_guard(previous, current)

    assert verdict.held
    assert (verdict.total_before, verdict.total_after) == (200, 50)
    assert (verdict.flipped_to_zero, verdict.skus) == (30, 40)
    assert verdict.examples == tuple(f"AE-{n:02d}" for n in range(10, 20))  # the first ten
    assert verdict.reason == (
        "total stock would drop by 75 % (200 to 50 units), more than the 50 % allowed; "
        "30 of the 40 SKUs in stock (75 %) would go to zero or be missing, more than the "
        "25 % allowed")


def test_after_a_feed_with_nothing_in_stock_nothing_is_held() -> None:
    verdict = drop_guard({"AE-1": 0, "AE-2": 0}, {"AE-1": 0})

    assert not verdict.held and (verdict.total_before, verdict.skus) == (0, 0)


def test_thresholds_are_configurable() -> None:
    previous = {"AE-1": 10, "AE-2": 10, "AE-3": 10, "AE-4": 10}
    current = {"AE-1": 10, "AE-2": 10, "AE-3": 10, "AE-4": 0}

    assert not drop_guard(previous, current).held
    strict = drop_guard(previous, current, max_total_drop=0.2, max_zero_flip=0.2)
    assert strict.held
    assert strict.reason is not None and "more than the 20 % allowed" in strict.reason
    assert not drop_guard(previous, {}, max_total_drop=1, max_zero_flip=1).held
    assert drop_guard(previous, current, max_total_drop=Fraction(1, 5)).held
    # 0.1 is read as one tenth, not as the binary float just above it.
    assert not drop_guard({"AE-1": 10}, {"AE-1": 9}, max_total_drop=0.1).held


@pytest.mark.parametrize("settings", [{"max_total_drop": 1.5}, {"max_zero_flip": -0.1}])
def test_thresholds_outside_zero_to_one_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="share from 0 to 1"):
        drop_guard({"AE-1": 1}, {"AE-1": 1}, **settings)


def test_negative_quantities_are_refused() -> None:
    with pytest.raises(ValueError, match="'AE-1'"):
        drop_guard({"AE-1": 1}, {"AE-1": -1})

