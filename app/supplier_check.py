"""`suppliers check`: can OrderHub reach each supplier's server, is it the server we pinned, may we
write there, and what is in its folders. Touches nothing but a test file it removes again."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from app.suppliers import Supplier
from app.transports import Transport, TransportError

FolderTransports = Callable[[Supplier, str | None], Transport]
SHOWN_NAMES = 10


@dataclass
class FolderListing:
    label: str                  # "purchase orders", "shipments_path", ...
    where: str
    names: list[str] | None = None
    error: str | None = None


@dataclass
class SupplierCheck:
    supplier: str
    where: str
    identity: str | None = None
    writable: bool = False
    error: str | None = None
    folders: list[FolderListing] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.writable and all(f.error is None
                                                            for f in self.folders)


def check_supplier(supplier: Supplier, transports: FolderTransports) -> SupplierCheck:
    """Connect, show who the server is, write and delete a test file, list the folders."""
    try:
        transport = transports(supplier, None)
    except (TransportError, ValueError) as exc:
        return SupplierCheck(supplier.key, supplier.transport, error=str(exc))
    result = SupplierCheck(supplier.key, transport.where)
    with transport:
        try:
            result.identity = transport.identity()
            transport.check_write()
            result.writable = True
            result.folders.append(FolderListing("purchase orders", transport.where,
                                                names=transport.list_names()))
        except TransportError as exc:
            result.error = str(exc)
            return result
    others = [("acks_path", supplier.acks_path), ("shipments_path", supplier.shipments_path),
              ("stock_feed folder", posixpath.dirname(supplier.stock_feed)
               if supplier.stock_feed else None)]
    for label, folder in others:
        if folder:
            result.folders.append(_listing(supplier, label, folder, transports))
    return result


def _listing(supplier: Supplier, label: str, folder: str,
             transports: FolderTransports) -> FolderListing:
    try:
        transport = transports(supplier, folder)
    except (TransportError, ValueError) as exc:
        return FolderListing(label, folder, error=str(exc))
    with transport:
        try:
            return FolderListing(label, transport.where, names=transport.list_names())
        except TransportError as exc:
            return FolderListing(label, transport.where, error=str(exc))


def describe(check: SupplierCheck) -> list[str]:
    """The lines `suppliers check` prints for one supplier."""
    lines = [f"{check.supplier}: {check.where}"]
    if check.identity:
        lines.append(f"  server: {check.identity}")
    if check.error:
        lines.append(f"  FAILED: {check.error}")
        return lines
    lines.append("  write: ok (a test file was written and removed)")
    for folder in check.folders:
        if folder.error:
            lines.append(f"  {folder.label}: FAILED: {folder.error}")
            continue
        names = folder.names or []
        shown = ", ".join(names[:SHOWN_NAMES]) + (" ..." if len(names) > SHOWN_NAMES else "")
        lines.append(f"  {folder.label} ({folder.where}): {len(names)} file(s)"
                     + (f": {shown}" if names else ""))
    return lines
