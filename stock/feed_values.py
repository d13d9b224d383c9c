"""Values every feed format reads the same way: quantities, dates and instants. Each returns
the value or a short reason (without a line number) for the parser to put in its message."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

from stock.feed_model import MAX_QUANTITY

_DATE: Final = r"(?P<date>\d{4}-\d{2}-\d{2})"
_TIME: Final = r"(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)"
_ZONE: Final = r"(?P<zone>Z|[+-]\d{2}:?\d{2})"
_INSTANT: Final = re.compile(rf"{_DATE}(?:[T ]{_TIME}\s*{_ZONE}?)?", re.IGNORECASE)
_ZONED: Final = re.compile(rf"{_DATE}T{_TIME}(?P<zone>Z|[+-]\d{{2}}:\d{{2}})", re.IGNORECASE)
_XML_DATE: Final = re.compile(rf"{_DATE}{_ZONE}?", re.IGNORECASE)
_XML_TIME: Final = re.compile(rf"{_TIME}{_ZONE}?", re.IGNORECASE)
# xs:decimal: optional sign, digits, optional fraction; never an exponent or a comma.
_XML_DECIMAL: Final = re.compile(r"(?P<sign>[+-]?)(?P<whole>\d*)(?:\.(?P<fraction>\d*))?")


def csv_quantity(text: str) -> int | str:
    """A CSV quantity: digits only, 0 or more. "1.000" could be one or a thousand, "1,5" a
    decimal or a mistake, so anything else is a reason, not a number."""
    text = text.strip()
    if not text:
        return "is empty"
    if text.isascii() and text.isdigit():
        return _bounded(text)
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        return "is negative"
    return "is not a whole number (digits only)"


def xml_quantity(text: str | None) -> int | str:
    """An XML quantity (xs:decimal, "10" or "10.000") as a whole number, 0 or more. The
    decimal point is unambiguous in XML, so a zero fraction is read; any other is a reason."""
    text = (text or "").strip()
    match = _XML_DECIMAL.fullmatch(text)
    if not text or match is None or not (match["whole"] or match["fraction"]):
        return "is not a number" if text else "is empty"
    if match["fraction"] and match["fraction"].strip("0"):
        return "is not a whole number"
    whole = match["whole"] or "0"
    if match["sign"] == "-" and whole.strip("0"):
        return "is negative"
    return _bounded(whole)


def _bounded(digits: str) -> int | str:
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(MAX_QUANTITY)) or int(significant) > MAX_QUANTITY:
        return f"is more than {MAX_QUANTITY}: is it in the right column?"
    return int(significant)


def iso_date(text: str) -> date | str:
    """An ISO 8601 calendar date, 2026-12-01 (a CSV eta)."""
    try:
        if re.fullmatch(_DATE, text.strip()):
            return date.fromisoformat(text.strip())
    except ValueError:
        return "is not a valid date"
    return "is not an ISO 8601 date (2026-12-01)"


def xml_date(text: str | None) -> date | str:
    """An xs:date, "2026-12-01" or "2026-12-01+01:00": the calendar day as written."""
    match = _XML_DATE.fullmatch((text or "").strip())
    if match is None:
        return "is not an xs:date (2026-12-01)"
    return iso_date(match["date"])


def instant(text: str) -> datetime | str:
    """An ISO 8601 date, or date and time, as aware UTC (a CSV as_of, the native asOf). A date
    alone is midnight UTC, a time without a zone is UTC."""
    match = _INSTANT.fullmatch(text.strip())
    if match is None:
        return "is not an ISO 8601 date or date and time (2026-11-23T06:00:00Z)"
    return _combine(match["date"], match["time"], match["zone"])


def zoned_instant(text: str) -> datetime | str:
    """An xs:dateTime with its zone, 2026-11-23T06:00:00Z or 2026-11-23T07:00:00+01:00, as
    aware UTC (the native feed's asOf: OrderHub's own format leaves nothing to assume)."""
    match = _ZONED.fullmatch(text.strip())
    if match is None:
        return "is not a date and time with a zone (2026-11-23T06:00:00Z)"
    return _combine(match["date"], match["time"], match["zone"])


def xml_instant(day: str | None, time: str | None) -> datetime | str:
    """A UBL cbc:IssueDate (xs:date) and optional cbc:IssueTime (xs:time) as aware UTC: the
    zone of the time, else of the date, else UTC; a date alone is midnight."""
    date_match = _XML_DATE.fullmatch((day or "").strip())
    time_match = _XML_TIME.fullmatch(time.strip()) if time is not None else None
    if date_match is None or (time is not None and time_match is None):
        return "is not an xs:date and xs:time (2026-11-23 and 06:00:00Z)"
    zone = (time_match["zone"] if time_match else None) or date_match["zone"]
    return _combine(date_match["date"], time_match["time"] if time_match else None, zone)


def _combine(day: str, time: str | None, zone: str | None) -> datetime | str:
    clock = time or "00:00"
    if "." in clock:
        whole, fraction = clock.split(".")
        clock = f"{whole}.{(fraction + '000000')[:6]}"  # Python reads at most microseconds
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}")
        offset = _offset(zone)
    except ValueError:
        return "is not a valid date and time"
    return moment.replace(tzinfo=offset).astimezone(UTC)


def _offset(zone: str | None) -> timezone:
    if zone is None or zone.upper() == "Z":
        return UTC
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(zone)
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if zone[0] == "-" else delta)
