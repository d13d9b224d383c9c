"""`UTCDateTime` binds the same on SQLite and PostgreSQL whether a time is new or repeated (bulk
writes send one `now` in every row, converted once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from sqlalchemy import Column, MetaData, Table, create_engine, select, text
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


@pytest.mark.parametrize("when", [
    NOON,
    NOON.replace(microsecond=0),                       # isoformat would drop ".000000"
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),       # a year of three digits
    datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN),
    datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-11))),
])
def test_sqlite_text_is_sqlalchemys_own_storage_format(when: datetime) -> None:
    """Stored times are compared as text (ranges, ORDER BY): the fast path must write exactly
    what SQLAlchemy's SQLite DATETIME writes, and read back the same instant."""
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("at", UTCDateTime()))
    table.create(engine)
    reference = sqlite.DATETIME().bind_processor(engine.dialect)  # type: ignore[no-untyped-call]
    assert reference is not None

    with engine.begin() as conn:
        conn.execute(table.insert(), {"at": when})
        stored = conn.execute(text("SELECT at FROM t")).scalar_one()
        loaded = conn.execute(select(table.c.at)).scalar_one()

    assert stored == reference(when.astimezone(UTC).replace(tzinfo=None))
    assert loaded == when and loaded.tzinfo == UTC


def test_the_two_times_of_an_hour_that_repeats_bind_an_hour_apart() -> None:
    """When summer time ends, 02:30 in Berlin happens twice (`fold` 0, then 1). The two compare
    equal, but they are different instants, and must not share a remembered text."""
    try:
        berlin = ZoneInfo("Europe/Berlin")
    except ZoneInfoNotFoundError:
        pytest.skip("no time zone data (apt-get install tzdata)")
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    first = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    again = first.replace(fold=1)
    assert first == again
    assert [bind(first), bind(again)] == ["2026-10-25 00:30:00.000000",
                                         "2026-10-25 01:30:00.000000"]


def test_postgresql_gets_aware_utc_times() -> None:
    dialect = create_engine("postgresql+psycopg://").dialect   # no connection is made
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    berlin = NOON.astimezone(BERLIN)
    assert bind(berlin) == NOON and bind(berlin).tzinfo == UTC
    assert bind(NOON) == NOON
