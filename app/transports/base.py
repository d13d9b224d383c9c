"""The protocol every supplier file server sits behind, and the atomic-upload rule they share.

An upload writes `NAME.tmp` and renames it to `NAME` once complete, so a supplier never sees a
partial file. A purchase-order version always has the same deterministic name, so when `NAME`
already holds exactly our bytes the earlier attempt got through (a crash after the rename but
before the outbox job was committed) and the upload counts as done; when it holds other bytes
it is the supplier's file and is never overwritten.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Literal, Protocol, Self

from app.errors import OrderHubError

UploadResult = Literal["uploaded", "already_present"]

DEFAULT_TEMP_SUFFIX = ".tmp"


class TransportError(OrderHubError):
    """A file-server operation failed; `retryable` says whether trying again later can help,
    `file_specific` whether other files could still go (otherwise the server or folder is)."""

    def __init__(self, message: str, *, retryable: bool, file_specific: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.file_specific = file_specific

    def __str__(self) -> str:
        kind = "retryable" if self.retryable else "not retryable"
        return f"{self.message} ({kind})"


class Transport(Protocol):
    """A supplier's file folder: upload atomically, list. Not shared between threads."""

    def upload_atomic(self, name: str, data: bytes) -> UploadResult:
        """Store `data` as `name` in the folder, never exposing a partial file."""
        ...

    def list_names(self) -> list[str]:
        """Names of the files in the folder, sorted, without our temporary files."""
        ...

    def close(self) -> None:
        """Release the connection, if any; the transport may be used again afterwards."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AtomicFolderTransport(Transport):
    """The upload algorithm once, over five small file operations each adapter provides."""

    def __init__(self, *, temp_suffix: str = DEFAULT_TEMP_SUFFIX) -> None:
        if not temp_suffix or "/" in temp_suffix:
            raise ValueError(f"temp_suffix {temp_suffix!r} must be a non-empty file-name suffix")
        self.temp_suffix = temp_suffix

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """The folder, for messages (never with a secret in it)."""

    @abc.abstractmethod
    def _size(self, name: str) -> int | None:
        """Size of the file `name`, or None if there is none."""

    @abc.abstractmethod
    def _read(self, name: str) -> bytes:
        """The whole content of the file `name`."""

    @abc.abstractmethod
    def _write(self, name: str, data: bytes) -> None:
        """Create or truncate `name` and write `data` completely (durably where possible)."""

    @abc.abstractmethod
    def _rename_into_place(self, temp: str, name: str) -> None:
        """Rename `temp` to `name`; raise FileExistsError if `name` appeared meanwhile."""

    @abc.abstractmethod
    def _remove(self, name: str) -> None:
        """Delete `name`; a missing file is not an error."""

    def upload_atomic(self, name: str, data: bytes) -> UploadResult:
        """Write `name + temp_suffix`, then rename it to `name`; idempotent for equal bytes."""
        self._check_name(name)
        temp = name + self.temp_suffix
        if self._size(name) is not None:
            return self._settle_existing(name, temp, data)
        # A temp file left by an earlier crash is simply truncated and rewritten.
        self._write(temp, data)
        try:
            self._rename_into_place(temp, name)
        except FileExistsError:
            # Someone created `name` between our check and the rename.
            return self._settle_existing(name, temp, data)
        return "uploaded"

    def _settle_existing(self, name: str, temp: str, data: bytes) -> UploadResult:
        size = self._size(name)
        if size == len(data) and self._read(name) == data:
            self._remove(temp)
            return "already_present"
        self._remove(temp)
        raise TransportError(
            f"{name} already exists in {self.where} with different content "
            f"({size} bytes there, {len(data)} bytes to send): refusing to overwrite a "
            "supplier's file", retryable=False, file_specific=True)

    def _check_name(self, name: str) -> None:
        if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
                or name.endswith(self.temp_suffix)):
            raise ValueError(f"{name!r} is not a plain file name for {self.where} "
                             f"(no folders, not ending in {self.temp_suffix!r})")
