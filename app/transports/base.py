"""The protocol every supplier file server sits behind, and the atomic-upload rule they share.

An upload writes `NAME.tmp` and renames it to `NAME` once complete, so a supplier never sees a
partial file. A purchase-order version always has the same deterministic name, so when `NAME`
already holds exactly our bytes the earlier attempt got through (a crash after the rename but
before the outbox job was committed) and the upload counts as done; when it holds other bytes
it is the supplier's file and is never overwritten.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import BinaryIO, Literal, Protocol, Self

from app.errors import OrderHubError

UploadResult = Literal["uploaded", "already_present"]

DEFAULT_TEMP_SUFFIX = ".tmp"
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024


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

    @property
    def where(self) -> str:
        """The folder, for messages (never with a secret in it)."""
        ...

    def upload_atomic(self, name: str, data: bytes) -> UploadResult:
        """Store `data` as `name` in the folder, never exposing a partial file."""
        ...

    def list_names(self) -> list[str]:
        """Names of the files in the folder, sorted, without our temporary files."""
        ...

    def size(self, name: str) -> int | None:
        """The size of the file `name`, or None when there is none."""
        ...

    def modified(self, name: str) -> datetime | None:
        """When the file `name` was last written (aware UTC), if the server says."""
        ...

    def download_to(self, name: str, sink: BinaryIO, *,
                    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> int:
        """Write the file `name` into `sink` as it arrives (for files too big to hold in
        memory); returns the number of bytes."""
        ...

    def download(self, name: str, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> bytes:
        """The whole content of the file `name` (refused when larger than `max_bytes`)."""
        ...

    def archive(self, name: str, subfolder: str) -> str:
        """Move `name` into `subfolder` (created if missing), never over a file already there;
        returns its new path relative to the folder."""
        ...

    def check_write(self) -> None:
        """Write, measure and delete a small test file: raises if the folder is not writable."""
        ...

    def identity(self) -> str | None:
        """Who the server proved to be (host key or certificate fingerprint), once connected."""
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

    def __init__(self, *, temp_suffix: str = DEFAULT_TEMP_SUFFIX, direct: bool = False) -> None:
        if not temp_suffix or "/" in temp_suffix:
            raise ValueError(f"temp_suffix {temp_suffix!r} must be a non-empty file-name suffix")
        self.temp_suffix = temp_suffix
        self.direct = direct   # write the final name at once (servers that refuse renames)

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

    @abc.abstractmethod
    def _make_folder(self, subfolder: str) -> None:
        """Create `subfolder` of the folder unless it exists."""

    @abc.abstractmethod
    def _move(self, name: str, target: str) -> None:
        """Rename `name` to the relative path `target` (which does not exist)."""

    def _prepare(self) -> None:
        """Whatever the first operation needs (a connection, the folder); idempotent."""

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Map the adapter's failures to TransportError (each adapter knows its own)."""
        yield

    def identity(self) -> str | None:
        return None

    def _modified(self, name: str) -> datetime | None:
        return None

    def _read_into(self, name: str, sink: BinaryIO) -> None:
        sink.write(self._read(name))

    def modified(self, name: str) -> datetime | None:
        self._check_name(name)
        with self._errors(f"look at {name}"):
            self._prepare()
            return self._modified(name)

    def download_to(self, name: str, sink: BinaryIO, *,
                    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> int:
        with self._errors(f"download {name}"):
            size = self._size_within(name, max_bytes)
            start = sink.tell()
            self._read_into(name, sink)
            written = sink.tell() - start
        self._check_complete(name, size, written)
        return written

    def _size_within(self, name: str, max_bytes: int) -> int:
        """The size of `name`, refused (file-specific, not retryable) when it is missing or
        larger than `max_bytes`."""
        self._check_name(name)
        self._prepare()
        size = self._size(name)
        if size is None:
            raise TransportError(f"{name} is not in {self.where}", retryable=False,
                                 file_specific=True)
        if size > max_bytes:
            raise TransportError(f"{name} in {self.where} is {size} bytes, more than the "
                                 f"{max_bytes} accepted", retryable=False, file_specific=True)
        return size

    def _check_complete(self, name: str, size: int, got: int) -> None:
        if got != size:  # a file still being written: complete later
            raise TransportError(f"{name} in {self.where} changed while it was read ({size} "
                                 f"then {got} bytes)", retryable=True, file_specific=True)

    def size(self, name: str) -> int | None:
        self._check_name(name)
        with self._errors(f"look at {name}"):
            self._prepare()
            return self._size(name)

    def download(self, name: str, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> bytes:
        """The whole file, checked against its size (a file still being written is refused
        as retryable: it will be complete later)."""
        with self._errors(f"download {name}"):
            size = self._size_within(name, max_bytes)
            data = self._read(name)
        self._check_complete(name, size, len(data))
        return data

    def archive(self, name: str, subfolder: str) -> str:
        """Move `name` into `subfolder`; a name taken there gets `.1`, `.2`, ... before its
        extension, so an earlier file with the same name is kept too."""
        self._check_name(name)
        if not subfolder or subfolder.startswith("/") or ".." in subfolder.split("/"):
            raise ValueError(f"{subfolder!r} is not a subfolder name")
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        with self._errors(f"move {name} to {subfolder}/"):
            self._prepare()
            self._make_folder(subfolder)
            target, n = f"{subfolder}/{name}", 0
            while self._size(target) is not None:
                n += 1
                target = f"{subfolder}/{stem}.{n}{'.' + ext if ext else ''}"
            self._move(name, target)
        return target

    def check_write(self) -> None:
        """Write a small test file under a temporary name, check its size, delete it."""
        probe = f".orderhub-check-{secrets.token_hex(4)}{self.temp_suffix}"
        data = b"OrderHub write check; safe to delete.\n"
        with self._errors("write a test file"):
            self._prepare()
            try:
                self._write(probe, data)
                size = self._size(probe)
            finally:
                self._remove(probe)
        if size != len(data):
            raise TransportError(f"a test file written to {self.where} reads back as {size} "
                                 f"bytes, not {len(data)}", retryable=False)

    def upload_atomic(self, name: str, data: bytes) -> UploadResult:
        """Write `name + temp_suffix`, then rename it to `name`; idempotent for equal bytes."""
        self._check_name(name)
        temp = name + self.temp_suffix
        if self.direct:
            return self._upload_direct(name, data)
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

    def _upload_direct(self, name: str, data: bytes) -> UploadResult:
        """For servers that refuse renames: write `name` itself. A shorter file holding the
        start of our bytes is our own interrupted upload, and is written again."""
        size = self._size(name)
        if size is not None:
            if size == len(data) and self._read(name) == data:
                return "already_present"
            if size >= len(data) or self._read(name) != data[:size]:
                return self._settle_existing(name, name + self.temp_suffix, data)
        self._write(name, data)
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
