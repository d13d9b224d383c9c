"""Pacing the dispatcher's writes on SQLite, so that webhooks are acknowledged first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select

from app.db import Database
from app.models import EventStatus, WebhookEvent
from app.types import utcnow


class GiveWay:
    """Leaves SQLite's one write lock to the webhooks while their deliveries pile up.

    SQLite lets one transaction write at a time. Applying a delivery holds that lock for a
    couple of milliseconds (routing, rendering, ~15 statements), and sending a purchase order
    for two short transactions; acknowledging a webhook needs it for a fraction of a
    millisecond, but a web worker waiting for it can do nothing else. Back to back, the
    dispatcher's transactions would stall every worker during a burst. So while deliveries
    pile up (`busy_per_s` or more a second of those received in the last `window_s` wait to be
    applied), each of the dispatcher's threads reports how long its transaction held the lock
    (`holding`), and waits until the dispatcher as a whole has held it at most `share` of the
    time.

    The share grows with the age of the oldest delivery waiting, to all of the lock once it has
    waited `max_delay_s`: a burst is acknowledged first and applied right after it, and under a
    steady stream the dispatcher never falls further behind than that. A dispatcher at full
    speed applies a delivery within a quarter of a second or so, so it starts giving way at
    about four times `busy_per_s` (or when it falls behind), and then keeps doing so while
    `busy_per_s` arrive. Slower, and with nothing arriving (the backlog after a burst, a
    restart), it works at full speed. On PostgreSQL writers take row locks and don't wait for
    each other: no pause is needed.
    """

    def __init__(self, db: Database, *, share: float = 0.02, max_delay_s: float = 300.0,
                 busy_per_s: float = 50.0, window_s: float = 1.0, check_every_s: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be more than 0 and at most 1, not {share}")
        self.db = db
        self.share = share
        self.max_delay_s = max_delay_s
        self.busy_per_s = busy_per_s
        self.window_s = window_s
        self.check_every_s = check_every_s
        self.sleep = sleep
        self.clock = clock
        self._mutex = threading.Lock()
        self._free_at = float("-inf")    # when the dispatcher may write again
        self._current = 1.0              # the share now: 1 while the web is not busy
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

    def current_share(self) -> float:
        """The share of the write lock the dispatcher may take now (looked up every
        `check_every_s`): 1 while fewer than `busy_per_s` a second of those received in the
        last `window_s` wait, else between `share` and 1 by the age of the oldest one waiting."""
        now = self.clock()
        if now - self._checked_at >= self.check_every_s:
            self._checked_at = now
            wall = utcnow()
            with self.db.read_session() as session:
                waiting = session.execute(_pending_since_query(), {
                    "since": wall - timedelta(seconds=self.window_s)}).scalar() or 0
                oldest = (session.execute(_oldest_pending_query()).scalar()
                          if waiting >= self.busy_per_s * self.window_s else None)
            if oldest is None:   # not busy (or applied meanwhile): nothing to give way to
                self._current = 1.0
            else:
                waited = (wall - oldest).total_seconds()
                self._current = min(1.0, max(self.share, waited / self.max_delay_s))
        return self._current


@cache
def _pending_since_query() -> Select[tuple[Any]]:
    """How many deliveries received since `:since` wait: a range of one index."""
    events = WebhookEvent.metadata.tables["webhook_events"]
    return select(func.count()).where(events.c.status == EventStatus.PENDING,
                                      events.c.received_at >= bindparam("since"))


@cache
def _oldest_pending_query() -> Select[tuple[Any]]:
    """When the oldest pending delivery arrived: one index lookup."""
    events = WebhookEvent.metadata.tables["webhook_events"]
    return select(func.min(events.c.received_at)).where(events.c.status == EventStatus.PENDING)
