"""OrderHub's own shipment notice, version 1 (`urn:orderhub:shipment-notice:1`), validated
against app/documents/schemas/orderhub-shipment-notice-1.xsd and described for suppliers in
app/documents/FORMATS.md. One file is one notice; no `Line` means the whole PO shipped.

`PoNumber` is read like the order reference of the other formats (our PO number, or our
payload id or file name); a `Version` contradicting the version it names is refused.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Final

from lxml import etree

from app.documents.common import first_errors
from shipment.fields import clean, instant, resolve_order, tracking_url
from shipment.model import NoticeInvalid, Package, ShipmentNotice, ShippedLine

NAMESPACE: Final = "urn:orderhub:shipment-notice:1"
SCHEMA_PATH: Final = (Path(__file__).parents[1] / "app" / "documents" / "schemas"
                      / "orderhub-shipment-notice-1.xsd")

_NS: Final = {"sn": NAMESPACE}
# An XMLSchema object keeps one error log; validating from two threads at once would mix them.
_SCHEMA_LOCK: Final = threading.Lock()


def read_native(root: etree._Element) -> list[ShipmentNotice]:
    """The notice in a parsed OrderHub shipment notice; raises `NoticeInvalid`."""
    if root.getroottree().docinfo.doctype:
        raise NoticeInvalid("ShipmentNotice must not declare a DOCTYPE", "orderhub")
    with _SCHEMA_LOCK:
        schema = _schema()
        if not schema.validate(root):
            reason = first_errors(schema.error_log).replace(f"{{{NAMESPACE}}}", "")
            raise NoticeInvalid(reason, "orderhub")
    reference = root.find("sn:PoNumber", _NS)
    where = f"ShipmentNotice/PoNumber (line {reference.sourceline})"
    po_number, file_name, version = resolve_order(reference.text, None, where, "orderhub")
    stated = _text(root, "sn:Version")
    if stated is not None:
        if version is not None and version != int(stated):
            raise NoticeInvalid(f"ShipmentNotice/Version {stated} contradicts {where}, which "
                                f"names version {version}", "orderhub")
        version = int(stated)
    shipped = root.find("sn:ShippedAt", _NS)
    shipped_at = None if shipped is None else instant(
        shipped.text, f"ShipmentNotice/ShippedAt (line {shipped.sourceline})", "orderhub")
    return [ShipmentNotice(
        po_number=po_number,
        po_file_name=file_name,
        version=version,
        shipment_id=_text(root, "sn:ShipmentId"),
        shipped_at=shipped_at,
        packages=tuple(_packages(root)),
        lines=tuple(
            ShippedLine(
                line_number=int(_text(line, "sn:LineNumber") or 0),
                sku=_text(line, "sn:Sku") or _text(line, "sn:SupplierSku"),
                supplier_sku=_text(line, "sn:SupplierSku"),
                quantity=int(_text(line, "sn:Quantity") or 0),
            )
            for line in root.iterfind("sn:Line", _NS)
        ),
        format="orderhub",
    )]


def _packages(root: etree._Element) -> list[Package]:
    packages = []
    for element in root.iterfind("sn:Package", _NS):
        url = element.find("sn:TrackingUrl", _NS)
        package = Package(
            carrier=_text(element, "sn:Carrier"),
            tracking_number=_text(element, "sn:TrackingNumber"),
            tracking_url=None if url is None else tracking_url(
                url.text, f"Package/TrackingUrl (line {url.sourceline})", "orderhub"),
        )
        if package != Package(None, None, None):
            packages.append(package)
    return packages


@functools.cache
def _schema() -> etree.XMLSchema:
    """The XSD, read once on first use (importing this module opens no file); hold the lock."""
    return etree.XMLSchema(file=str(SCHEMA_PATH))


def _text(parent: etree._Element, path: str) -> str | None:
    element = parent.find(path, _NS)
    return None if element is None else clean(element.text)
