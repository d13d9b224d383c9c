"""`UTCDateTime` binds the same on SQLite and PostgreSQL whether a time is new or repeated (bulk
writes send one `now` in every row, converted once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite

from app.types import UTCDateTime

NOON = datetime(2026, 12, 5, 12, 0, 0, 250_000, tzinfo=UTC)
BERLIN = timezone(timedelta(hours=1))


def test_repeated_and_new_times_bind_as_utc_on_sqlite() -> None:
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None

    sent = [bind(t) for t in (NOON, NOON, NOON + timedelta(seconds=1), NOON,
                              datetime(2026, 12, 5, 13, 0, 0, 250_000, tzinfo=BERLIN), None)]

    assert sent == ["2026-12-05 12:00:00.250000", "2026-12-05 12:00:00.250000",
                    "2026-12-05 12:00:01.250000", "2026-12-05 12:00:00.250000",
                    "2026-12-05 12:00:00.250000", None]


def test_more_times_than_remembered_still_bind_right() -> None:
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    times = [NOON + timedelta(minutes=n) for n in range(20)]
    assert [bind(t) for t in times * 2] == [
        f"2026-12-05 12:{n:02d}:00.250000" for n in range(20)] * 2


def test_a_naive_time_is_refused_even_when_an_equal_one_was_sent() -> None:
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    bind(NOON)
    with pytest.raises(ValueError, match="naive"):
        bind(NOON.replace(tzinfo=None))


def test_postgresql_gets_aware_utc_times() -> None:
    dialect = create_engine("postgresql+psycopg://").dialect   # no connection is made
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    berlin = NOON.astimezone(BERLIN)
    assert bind(berlin) == NOON and bind(berlin).tzinfo == UTC
    assert bind(NOON) == NOON
