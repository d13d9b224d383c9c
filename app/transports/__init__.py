"""A supplier's file server behind one protocol: SFTP, FTPS (explicit TLS), a local folder.

`transport_for` picks the adapter from the supplier's `transport` URL. Importing this package
opens nothing; an SFTP or FTPS connection is opened on first use.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from app.suppliers import Supplier
from app.transports.base import (
    DEFAULT_TEMP_SUFFIX,
    AtomicFolderTransport,
    Transport,
    TransportError,
    UploadResult,
)
from app.transports.ftps import FtpsTransport
from app.transports.local import LocalFolderTransport
from app.transports.sftp import SftpTransport

__all__ = [
    "DEFAULT_TEMP_SUFFIX", "AtomicFolderTransport", "FtpsTransport", "LocalFolderTransport",
    "SftpTransport",
    "Transport", "TransportError", "UploadResult", "transport_for",
]


def transport_for(supplier: Supplier, *, password: str | None,
                  folder: str | None = None) -> Transport:
    """The transport for `supplier.transport`, or for another `folder` on the same server (its
    `acks_path`, say); the caller resolves `password_env` itself."""
    url = urlsplit(supplier.transport)
    if folder is not None:
        relative = url.scheme == "file" and not folder.startswith("/")
        url = url._replace(path=f"{url.path.rstrip('/')}/{folder}" if relative else folder)
    temp_suffix, direct = supplier.temp_suffix, supplier.direct_upload
    if url.scheme == "file":
        host = "" if url.netloc in ("", "localhost") else url.netloc
        return LocalFolderTransport(unquote(host + url.path), temp_suffix=temp_suffix,
                                    direct=direct)
    if url.scheme == "sftp":
        if not url.hostname or not url.username:
            raise ValueError(f"suppliers.{supplier.key}.transport: sftp:// needs user@host")
        if not supplier.host_key:
            raise ValueError(f"suppliers.{supplier.key}.host_key: required for sftp://")
        return SftpTransport(
            host=url.hostname, port=url.port or 22, username=unquote(url.username),
            folder=unquote(url.path) or ".", host_key=supplier.host_key, password=password,
            key_file=supplier.key_file, temp_suffix=temp_suffix, direct=direct)
    if url.scheme == "ftps":
        if not url.hostname or not url.username:
            raise ValueError(f"suppliers.{supplier.key}.transport: ftps:// needs user@host")
        if password is None:
            raise ValueError(f"suppliers.{supplier.key}.password_env: required for ftps://")
        return FtpsTransport(
            host=url.hostname, port=url.port or 21, username=unquote(url.username),
            folder=unquote(url.path), password=password, ca_file=supplier.ca_file,
            temp_suffix=temp_suffix, direct=direct)
    raise ValueError(f"suppliers.{supplier.key}.transport: unknown scheme {url.scheme!r}")
