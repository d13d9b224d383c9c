"""Values every notice format reads the same way: which purchase order is meant, times,
quantities, line numbers and tracking URLs. Each reader raises `NoticeInvalid` with `where`
(a CSV line and column, or an XML element and line) in its message."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Final
from urllib.parse import urlsplit

from shipment.model import NoticeFormat, NoticeInvalid

# Our payload id, "<po number>.v<version>@orderhub" (app/purchasing.py).
_PAYLOAD_ID: Final = re.compile(r"(?P<po>.+)\.v(?P<version>[1-9][0-9]*)@orderhub")
# Our file name, "PO_<supplier>_<channel>-<order number>_v<version>.xml"; the PO number cannot
# be read back from it (a supplier key may contain "_"), so the file name itself is kept.
_FILE_NAME: Final = re.compile(r"PO_[A-Za-z0-9._-]+_v(?P<version>[1-9][0-9]*)\.xml")
_DATE: Final = r"(?P<date>\d{4}-\d{2}-\d{2})"
_TIME: Final = r"(?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)"
_ZONE: Final = r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)"
_INSTANT: Final = re.compile(rf"{_DATE}(?:[T ]{_TIME}\s*{_ZONE}?)?", re.I)
_UBL_DATE: Final = re.compile(rf"{_DATE}{_ZONE}?", re.I)
_UBL_TIME: Final = re.compile(rf"{_TIME}{_ZONE}?", re.I)
# UBL and Peppol write "NA" in OrderLineReference/LineID when the order line is not known.
_NO_LINE: Final = frozenset({"NA", "N/A"})


def clean(value: str | None) -> str | None:
    """`value` without surrounding white space, or None when nothing is left."""
    value = value.strip() if value is not None else None
    return value or None


def resolve_order(quoted: str | None, payload_id: str | None, where: str,
                  fmt: NoticeFormat) -> tuple[str | None, str | None, int | None]:
    """(po_number, po_file_name, version) from what the notice quotes as the order and, when
    it has one, the payload id of the document it answers.

    The quoted order may be our PO number, our payload id or our file name; a payload id of
    ours names the PO, and must agree with the quoted PO number (which may also be our
    OrderChange's document id, "<po number>-v<version>")."""
    quoted, payload_id = clean(quoted), clean(payload_id)
    ours = _PAYLOAD_ID.fullmatch(payload_id) if payload_id else None
    quoted_id = _PAYLOAD_ID.fullmatch(quoted) if quoted else None
    if quoted_id is not None:  # the payload id given where the PO number belongs
        if ours is not None and ours.group(0) != quoted_id.group(0):
            raise NoticeInvalid(f"{where} quotes two payload ids, {quoted!r} and "
                                f"{payload_id!r}", fmt)
        ours, quoted = quoted_id, None
    file_name = _FILE_NAME.fullmatch(quoted) if quoted else None
    if file_name is not None:
        quoted = None
    if ours is None and file_name is None:
        if quoted is None:
            raise NoticeInvalid(f"{where} names no purchase order", fmt)
        return quoted, None, None
    po_number = ours["po"] if ours else quoted
    version = int(ours["version"]) if ours else None
    if ours and quoted is not None and quoted not in (po_number, f"{po_number}-v{version}"):
        raise NoticeInvalid(f"{where} names PO {quoted!r} but quotes payload id "
                            f"{ours.group(0)!r} of PO {po_number!r}", fmt)
    if file_name is not None:
        named = int(file_name["version"])
        if version is not None and version != named:
            raise NoticeInvalid(f"{where} quotes file {file_name.group(0)!r} (version {named}) "
                                f"and payload id {ours.group(0) if ours else ''!r} "
                                f"(version {version})", fmt)
        return po_number, file_name.group(0), named
    return po_number, None, version


def instant(text: str, where: str, fmt: NoticeFormat) -> datetime:
    """An ISO 8601 date, or date and time, as aware UTC.

    A date alone is midnight UTC; a time without a zone is taken as UTC (a shipping date is
    rarely more precise than the day, and a wrong hour matters less than no date at all)."""
    match = _INSTANT.fullmatch(text.strip())
    if match is None:
        raise NoticeInvalid(f"{where} {text!r} is not an ISO 8601 date or date and time "
                            "(2026-11-23 or 2026-11-23T10:05:00Z)", fmt)
    return _combine(match["date"], match["time"], match["zone"], text, where, fmt)


def ubl_instant(date: str, time: str | None, where: str, fmt: NoticeFormat) -> datetime:
    """A UBL date (xs:date) and optional time (xs:time) as one instant, aware UTC: the zone of
    the time, else of the date, else UTC; a date alone is midnight."""
    date_match = _UBL_DATE.fullmatch(date.strip())
    time_match = _UBL_TIME.fullmatch(time.strip()) if time is not None else None
    if date_match is None or (time is not None and time_match is None):
        raise NoticeInvalid(f"{where} {date!r} {time or ''!r} is not an xs:date and xs:time",
                            fmt)
    zone = (time_match["zone"] if time_match else None) or date_match["zone"]
    return _combine(date_match["date"], time_match["time"] if time_match else None, zone,
                    f"{date} {time or ''}".strip(), where, fmt)


def _combine(date: str, time: str | None, zone: str | None, text: str, where: str,
             fmt: NoticeFormat) -> datetime:
    clock = (time or "00:00").replace(",", ".")
    if "." in clock:
        whole, fraction = clock.split(".")
        clock = f"{whole}.{(fraction + '000000')[:6]}"  # Python reads at most microseconds
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}")
        offset = _offset(zone)
    except ValueError:
        raise NoticeInvalid(f"{where} {text!r} is not a valid date and time", fmt) from None
    return moment.replace(tzinfo=offset).astimezone(UTC)


def _offset(zone: str | None) -> timezone:
    if zone is None or zone.upper() == "Z":
        return UTC
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(zone)
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if zone[0] == "-" else delta)


def xml_quantity(text: str | None, where: str, fmt: NoticeFormat) -> int:
    """A quantity written as an XML decimal ("2", "2.000") as a whole number, 0 or more."""
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise NoticeInvalid(f"{where} {text!r} is not a whole number of units", fmt)
    return int(value)


def line_number(text: str | None, where: str, fmt: NoticeFormat) -> int | None:
    """A PO line number (1, 2, ...); None when absent or given as "NA"."""
    value = clean(text)
    if value is None or value.upper() in _NO_LINE:
        return None
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise NoticeInvalid(f"{where} {text!r} is not a PO line number (1, 2, ...)", fmt)
    return int(value)


def tracking_url(text: str | None, where: str, fmt: NoticeFormat) -> str | None:
    """An absolute http(s) URL, or None; anything else (javascript:, a bare host) is refused,
    since the URL is shown to people and may be passed to the shop."""
    value = clean(text)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(
            char.isspace() for char in value):
        raise NoticeInvalid(f"{where} {value!r} is not an http or https URL", fmt)
    return value
