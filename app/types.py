"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine


def new_id() -> uuid.UUID:
    """A client-side, time-ordered id (UUID version 7): sortable, unique across processes."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: OrderHub stores only aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """TypeDecorator's, made cheaper on SQLite, where a time is stored as text: the text is
        written by `isoformat` (in C) instead of a %-format of seven fields, and the last few
        UTC times converted are remembered. A bulk write sends the same times (`now`, a feed's
        `as_of`) in every row, hundreds of thousands in a stock sync; a webhook two new ones.
        Only UTC times are remembered: two equal times in a zone with summer time may still
        be an hour apart (`fold`)."""
        convert = super().bind_processor(dialect)
        if dialect.name != "sqlite" or convert is None:
            return convert
        recent: dict[datetime, str] = {}   # threads share it; each step is one dict operation

        def process(value: Any) -> Any:
            if type(value) is not datetime or value.utcoffset() is None:
                return convert(value)  # None, a naive time (refused), a subclass: the long way
            if value.tzinfo is not UTC:
                return _sqlite_text(value.astimezone(UTC))
            text = recent.get(value)
            if text is None:
                if len(recent) >= 8:
                    recent.clear()
                text = recent[value] = _sqlite_text(value)
            return text

        return process


def _sqlite_text(utc: datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores, exactly: "YYYY-MM-DD HH:MM:SS.ffffff"."""
    return utc.replace(tzinfo=None).isoformat(" ", "microseconds")


class Money(TypeDecorator[Decimal]):
    """An exact decimal amount: NUMERIC on PostgreSQL, decimal text on SQLite.

    Both keep the amount exactly as the platform wrote it ("19.90" stays "19.90"); SQLite has no
    decimal type and would otherwise turn money into a float.
    """

    impl = Numeric()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, got {type(value).__name__}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)
