"""`db backup`: a consistent copy of the SQLite database while OrderHub keeps running.

SQLite's online backup API copies the database page by page under a read transaction, so the
copy is the database as it was at one instant (every transaction committed before it, none
after), while web workers and the dispatcher go on writing. The copy is written under a
temporary name, checked with `PRAGMA integrity_check`, fsynced and then renamed into place, so a
backup file that exists is a complete one. PostgreSQL has its own tools (pg_dump).
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from app.errors import OrderHubError

NAME = re.compile(r"^orderhub-\d{8}T\d{6}Z\.db$")


class BackupError(OrderHubError):
    """The backup could not be made (and why)."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    removed: tuple[Path, ...]


def backup_sqlite(database_url: str, target: Path, *, now: datetime,
                  keep: int | None = None) -> BackupResult:
    """Copy the database to `target`: a file (`.../orderhub.db`), or a folder (existing, or a
    path without an extension) that gets `orderhub-YYYYMMDDTHHMMSSZ.db`; with a folder and
    `keep`, all but the newest `keep` backups there are deleted."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BackupError("db backup copies SQLite databases; for PostgreSQL use pg_dump "
                          "(e.g. pg_dump -Fc -f orderhub.dump $DATABASE_URL), see deploy/README.md")
    source = Path(url.database)
    if not source.exists():
        raise BackupError(f"the database {source} does not exist")
    # A folder (existing, or a path without an extension) gets a timestamped file.
    folder = target if target.is_dir() or not target.suffix else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"orderhub-{now.strftime('%Y%m%dT%H%M%SZ')}.db"
    if target.resolve() == source.resolve():
        raise BackupError("the backup cannot be the database itself")
    temp = target.with_name(f".{target.name}.partial")
    temp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(temp)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        temp.unlink(missing_ok=True)
        raise BackupError(f"backup of {source} failed: {exc}") from None
    finally:
        src.close()
    with open(temp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(temp, target)
    removed: list[Path] = []
    if folder is not None and keep is not None:
        backups = sorted(p for p in folder.iterdir() if NAME.match(p.name))
        for old in backups[:-keep] if keep > 0 else []:
            old.unlink()
            removed.append(old)
    return BackupResult(target, target.stat().st_size, tuple(removed))
