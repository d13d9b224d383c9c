"""Small helpers shared by the unit tests: reading Shopify fixture files, UTC times."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

SHOPIFY_FIXTURES = Path(__file__).parent.parent / "fixtures" / "shopify"


def raw_fixture(name: str) -> bytes:
    """A fixture's bytes, exactly as a webhook body would arrive."""
    return (SHOPIFY_FIXTURES / name).read_bytes()


def load_fixture(name: str) -> Any:
    """A fixture decoded the way intake decodes a body (JSON numbers as Decimal, never float)."""
    return json.loads(raw_fixture(name), parse_float=Decimal)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    """An aware UTC time, to compare against what the code produced."""
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)
