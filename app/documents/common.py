"""Helpers every purchase-order renderer shares: exact text for times and amounts, and a
parser for checking documents that trusts nothing in them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from lxml import etree

from app.documents.model import DocumentInvalid

_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def format_utc(moment: datetime, field: str, fmt: str) -> str:
    """`moment` in UTC to the second, with a literal Z: 2026-11-20T14:14:05Z."""
    return utc_seconds(moment, field, fmt).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_seconds(moment: datetime, field: str, fmt: str) -> datetime:
    """`moment` converted to UTC and cut to whole seconds; a naive `moment` is a bug."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time would be read in the host's zone: the bytes would depend on the machine.
        raise DocumentInvalid(fmt, f"{field} is a naive datetime; it must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def format_decimal(amount: Decimal) -> str:
    """Plain decimal notation, exactly as stored ("12.50", "1500"), never an exponent."""
    return format(amount, "f")


def present(value: str | None) -> str | None:
    """`value`, or None when it is missing or blank: shops send "" for an empty address line
    or SKU, and an optional element is left out rather than sent empty."""
    return value if value is not None and value.strip() else None


def xml_safe(value: str) -> str:
    """`value` without the characters XML 1.0 cannot carry (NUL, most C0 controls, lone
    surrogates); a stray control character in a customer's note must not stop an order."""
    return _NOT_XML_CHAR.sub("", value)


class XmlRefused(ValueError):
    """Bytes the hardened parser will not read; the message says why."""


def parse_hardened(xml: bytes) -> etree._Element:
    """Parse `xml` without loading a DTD, resolving an entity or touching the network.

    Raises `XmlRefused` for bytes that are not well-formed XML, that declare entities or
    elements in a DOCTYPE, or that contain an entity reference: the reference would point at a
    DTD that is never loaded, or at a file or URL (XXE), or expand without bound ("billion
    laughs"). The DOCTYPE itself, if any, is left for the caller to judge (`docinfo`).
    """
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )
    try:
        root: etree._Element = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(f"not well-formed XML: {exc}") from None
    # libxml2 keeps an (empty) internal subset for every DOCTYPE; declarations in it are the
    # trick: entities (XXE, "billion laughs") and elements that would try to redefine ours.
    internal = root.getroottree().docinfo.internalDTD
    if internal is not None and (
        next(internal.iterentities(), None) is not None
        or next(internal.iterelements(), None) is not None
    ):
        raise XmlRefused("the document declares entities or elements in its DOCTYPE")
    if next(root.getroottree().iter(etree.Entity), None) is not None:
        raise XmlRefused("the document contains an entity reference")
    return root


def parse_untrusted(xml: bytes, fmt: str, *, doctype_allowed: str | None) -> etree._Element:
    """Parse `xml` with `parse_hardened`, raising `DocumentInvalid` for what it refuses.

    `doctype_allowed` is the only SYSTEM identifier the document may declare (None: no DOCTYPE
    at all). Declarations inside the DOCTYPE and entity references are rejected: OrderHub never
    writes them, so their presence means the bytes did not come from a renderer.
    """
    try:
        root = parse_hardened(xml)
    except XmlRefused as exc:
        raise DocumentInvalid(fmt, str(exc)) from None
    docinfo = root.getroottree().docinfo
    system_url = docinfo.system_url
    if doctype_allowed is None and (docinfo.doctype or system_url):
        raise DocumentInvalid(fmt, "the document must not declare a DOCTYPE")
    if doctype_allowed is not None and system_url != doctype_allowed:
        raise DocumentInvalid(
            fmt, f"DOCTYPE SYSTEM identifier must be {doctype_allowed!r}, not {system_url!r}"
        )
    return root


def first_errors(error_log: etree._ListErrorLog, limit: int = 3) -> str:
    """The first few validation errors, each with its line, for a person to read."""
    errors = [f"line {error.line}: {error.message}" for error in list(error_log)[:limit]]
    return "; ".join(errors) or "invalid (no detail from the validator)"
