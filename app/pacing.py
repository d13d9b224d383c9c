"""Pacing the dispatcher's writes on SQLite, so that webhooks are acknowledged first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, func, select

from app.db import Database
from app.models import EventStatus, WebhookEvent
from app.types import utcnow


class GiveWay:
    """Leaves SQLite's one write lock to the webhooks while they are arriving.

    SQLite lets one transaction write at a time. Applying a delivery holds that lock for a
    couple of milliseconds (routing, rendering, ~15 statements), and sending a purchase order
    for two short transactions; acknowledging a webhook needs it for a fraction of a
    millisecond. Back to back, the dispatcher's transactions would make every webhook wait. So
    while deliveries are arriving (one was received within `recent_s`), each of the
    dispatcher's threads reports how long its transaction held the lock (`holding`), and waits
    until the
    dispatcher as a whole has held it at most `share` of the time.

    The share grows with the age of the oldest delivery waiting, to all of the lock once it has
    waited `max_delay_s`: a burst is acknowledged first and applied right after it, but under
    a steady stream the dispatcher never falls further behind than that. With nothing
    arriving (the backlog after a burst, or a restart) it works at full speed. On PostgreSQL
    writers take row locks and don't wait for each other: no pause is needed.
    """

    def __init__(self, db: Database, *, share: float = 0.05, max_delay_s: float = 300.0,
                 recent_s: float = 1.0, check_every_s: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be more than 0 and at most 1, not {share}")
        self.db = db
        self.share = share
        self.max_delay_s = max_delay_s
        self.recent_s = recent_s
        self.check_every_s = check_every_s
        self.sleep = sleep
        self.clock = clock
        self._mutex = threading.Lock()
        self._free_at = float("-inf")    # when the dispatcher may write again
        self._current = 1.0              # the share now: 1 while nothing arrives
        self._last_arrival: datetime | None = None
        self._checked_at = float("-inf")

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Around a write transaction (from taking the lock to its commit): measures it and
        pauses after it, as `after_write` says."""
        started = time.monotonic()
        yield
        self.after_write(time.monotonic() - started)

    def after_write(self, held_s: float) -> float:
        """Call after a write transaction, with how long it held the lock; returns the pause."""
        if self.share >= 1 or not self.db.is_sqlite:
            return 0.0
        share = self.current_share()
        if share >= 1:
            return 0.0
        with self._mutex:   # the pauses of all threads add up: the share is the dispatcher's
            now = self.clock()
            self._free_at = max(now, self._free_at) + held_s * (1 - share) / share
            pause = self._free_at - now
        self.sleep(pause)
        return pause

    def arrived(self, received_at: datetime) -> None:
        """A delivery received then was seen (by `apply_pending`, which may apply it before
        the next look at what is pending)."""
        with self._mutex:
            if self._last_arrival is None or received_at > self._last_arrival:
                self._last_arrival = received_at

    def current_share(self) -> float:
        """The share of the write lock the dispatcher may take now (looked up every
        `check_every_s`): 1 while no delivery arrives, else between `share` and 1 by the age
        of the oldest one waiting."""
        now = self.clock()
        if now - self._checked_at >= self.check_every_s:
            self._checked_at = now
            with self.db.read_session() as session:
                newest = session.execute(_pending_received_query(newest=True)).scalar()
                oldest = session.execute(_pending_received_query(newest=False)).scalar()
            if newest is not None:
                self.arrived(newest)
            wall = utcnow()
            if self._last_arrival is None or (
                    wall - self._last_arrival).total_seconds() >= self.recent_s:
                self._current = 1.0
            else:
                waited = (wall - oldest).total_seconds() if oldest is not None else 0.0
                self._current = min(1.0, max(self.share, waited / self.max_delay_s))
        return self._current


@cache
def _pending_received_query(*, newest: bool) -> Select[tuple[Any]]:
    """When the newest (or oldest) pending delivery arrived: one index lookup each."""
    events = WebhookEvent.metadata.tables["webhook_events"]
    pick = func.max if newest else func.min
    return select(pick(events.c.received_at)).where(events.c.status == EventStatus.PENDING)
