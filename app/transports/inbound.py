"""Which files in a supplier's folder are ready to be read: not temporary, not a marker, and
not still being written (a file whose size changes between two looks is left for next time).
Shared by acknowledgements and shipment notices (stock feeds name their one file)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.transports.base import Transport

log = logging.getLogger(__name__)

# Names suppliers' tools use while a file is still being written, and markers beside files.
UNFINISHED_SUFFIXES = (".tmp", ".part", ".filepart", ".partial", ".crdownload", ".lock",
                       ".inprogress", ".writing")
MARKER_SUFFIXES = (".done", ".ok", ".ready", ".md5", ".sha256", ".reason.txt", ".sem")


def ready_names(folder: Transport, *, settle_seconds: float,
                sleep: Callable[[float], None]) -> tuple[list[str], int]:
    """The names ready to read, and how many were left for later."""
    names, skipped = [], 0
    for name in folder.list_names():
        if name.startswith(".") or name.lower().endswith(UNFINISHED_SUFFIXES + MARKER_SUFFIXES):
            skipped += 1
            continue
        names.append(name)
    if not names:
        return [], skipped
    before = {name: _size(folder, name) for name in names}
    if settle_seconds > 0:
        sleep(settle_seconds)
    ready = []
    for name in names:
        if before[name] is None or _size(folder, name) != before[name]:
            skipped += 1
            log.info("%s in %s is still being written (or unreadable); next time", name,
                     folder.where)
            continue
        ready.append(name)
    return ready, skipped


def _size(folder: Transport, name: str) -> int | None:
    try:
        return folder.size(name)
    except ValueError:  # a name our transports refuse (e.g. with a backslash): leave it
        log.warning("%r in %s is not a plain file name; left alone", name, folder.where)
        return None
