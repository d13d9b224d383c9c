"""Log lines that say which piece of work they belong to.

`with bind(order_id=...):` puts ids in a context variable for the duration of the block (in this
thread or task only; a nested `bind` adds to the outer one and is undone at its end), and
`ContextFilter` copies them onto every record the handler sees. `TextFormatter` appends them as
` [delivery=... order=... po=... job=...]`; `JsonFormatter` writes one JSON object per line with
them as fields, for log shippers that read journald. Both write the message only: callers never
log a secret or a whole payload, and these formatters add nothing from the request.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

LOG_FORMATS = ("text", "json")
# The record attribute, the text label, in the order they are shown.
FIELDS = (("delivery_id", "delivery"), ("order_id", "order"), ("po_id", "po"),
          ("job_id", "job"))

_bound: ContextVar[Mapping[str, str] | None] = ContextVar("orderhub_log_ids", default=None)


@contextmanager
def bind(*, delivery_id: object = None, order_id: object = None, po_id: object = None,
         job_id: object = None) -> Iterator[None]:
    """Add these ids (those not None) to every log line written inside the block."""
    given = {"delivery_id": delivery_id, "order_id": order_id, "po_id": po_id,
             "job_id": job_id}
    token = _bound.set({**bound(), **{k: str(v) for k, v in given.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


def bound() -> Mapping[str, str]:
    """The ids bound here and now."""
    return _bound.get() or {}


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (`record.delivery_id`, ...; None when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = bound()
        for name, _ in FIELDS:
            if not hasattr(record, name):  # an explicit `extra=` wins
                setattr(record, name, ids.get(name))
        return True


def _ids(record: logging.LogRecord) -> list[tuple[str, str, str]]:
    return [(name, label, str(value)) for name, label in FIELDS
            if (value := getattr(record, name, None)) is not None]


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [delivery=... order=...]`, the traceback after."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = _ids(record)
        if ids:
            line += " [" + " ".join(f"{label}={value}" for _, label, value in ids) + "]"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the bound ids,
    and `exception` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: value for name, _, value in _ids(record)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT `text` or `json`."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format {log_format!r}")


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """OrderHub's own handler: to stdout (journald), with the bound ids on every record."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.addFilter(ContextFilter())
