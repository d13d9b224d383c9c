"""Purchase-order documents: one renderer per format, each validated before it is stored.

Formats: `orderhub` (ours, `schemas/orderhub-purchase-order-1.xsd`, described in FORMATS.md),
`cxml` (cXML OrderRequest) and `ubl` (UBL 2.1 Order / OrderChange / OrderCancellation).
Suppliers' acknowledgements of them are parsed by `app.documents.acks`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from app.documents.model import DocumentInvalid, PurchaseOrderDoc

Renderer = Callable[[PurchaseOrderDoc], bytes]
Validator = Callable[[bytes], None]


@cache
def _formats() -> dict[str, tuple[Renderer, Validator]]:
    from app.documents.cxml import render_cxml, validate_cxml
    from app.documents.orderhub import render_orderhub, validate_orderhub
    from app.documents.ubl import render_ubl, validate_ubl

    return {
        "orderhub": (render_orderhub, validate_orderhub),
        "cxml": (render_cxml, validate_cxml),
        "ubl": (render_ubl, validate_ubl),
    }


def render_document(fmt: str, doc: PurchaseOrderDoc) -> bytes:
    """Render `doc` in `fmt` and validate it; raises `DocumentInvalid` if it fails its schema."""
    formats = _formats()
    if fmt not in formats:
        raise DocumentInvalid(fmt, f"unknown format {fmt!r}")
    render, validate = formats[fmt]
    xml = render(doc)
    validate(xml)
    return xml
