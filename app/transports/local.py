"""A supplier "file server" that is a folder on this machine (file://): demo mode and tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from app.transports.base import (
    DEFAULT_TEMP_SUFFIX,
    AtomicFolderTransport,
    TransportError,
    UploadResult,
)


class LocalFolderTransport(AtomicFolderTransport):
    """Files in a local folder, created if missing; the rename is `os.replace`."""

    def __init__(self, folder: str | os.PathLike[str], *,
                 temp_suffix: str = DEFAULT_TEMP_SUFFIX, direct: bool = False) -> None:
        super().__init__(temp_suffix=temp_suffix, direct=direct)
        self.folder = Path(folder)
        self._ready = False

    @property
    def where(self) -> str:
        return f"folder {self.folder}"

    def list_names(self) -> list[str]:
        """Regular files in the folder, sorted, without our temporary files."""
        with self._errors("list"):
            self._ensure_folder()
            return sorted(entry.name for entry in os.scandir(self.folder)
                          if entry.is_file() and not entry.name.endswith(self.temp_suffix))

    def close(self) -> None:
        """Nothing to release."""

    def upload_atomic(self, name: str, data: bytes) -> UploadResult:
        """Write `name + temp_suffix`, fsync it, then `os.replace` it to `name`."""
        with self._errors(f"upload {name}"):
            self._ensure_folder()
            return super().upload_atomic(name, data)

    def _prepare(self) -> None:
        self._ensure_folder()

    def _modified(self, name: str) -> datetime | None:
        try:
            return datetime.fromtimestamp((self.folder / name).stat().st_mtime, UTC)
        except FileNotFoundError:
            return None

    def _read_into(self, name: str, sink: BinaryIO) -> None:
        with open(self.folder / name, "rb") as fh:
            shutil.copyfileobj(fh, sink, 1024 * 1024)

    def _make_folder(self, subfolder: str) -> None:
        (self.folder / subfolder).mkdir(parents=True, exist_ok=True)

    def _move(self, name: str, target: str) -> None:
        os.rename(self.folder / name, self.folder / target)
        self._fsync_folder()

    def _ensure_folder(self) -> None:
        # Created lazily, not in __init__: constructing a transport touches nothing.
        if not self._ready:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._ready = True

    def _size(self, name: str) -> int | None:
        try:
            return (self.folder / name).stat().st_size
        except FileNotFoundError:
            return None

    def _read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def _write(self, name: str, data: bytes) -> None:
        with open(self.folder / name, "wb") as fh:
            fh.write(data)
            fh.flush()
            # The bytes must be on disk before the rename makes them visible under the real name.
            os.fsync(fh.fileno())

    def _rename_into_place(self, temp: str, name: str) -> None:
        os.replace(self.folder / temp, self.folder / name)
        self._fsync_folder()

    def _remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    def _fsync_folder(self) -> None:
        # Makes the rename itself durable; not every platform can open a directory.
        try:
            fd = os.open(self.folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        # Permissions and missing paths need a person; other OS errors may pass (disk full).
        try:
            yield
        except OSError as exc:
            retryable = not isinstance(exc, PermissionError | FileNotFoundError
                                       | NotADirectoryError | IsADirectoryError)
            raise TransportError(f"cannot {doing} in {self.where}: {exc}",
                                 retryable=retryable) from exc
