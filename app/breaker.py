"""A per-lane circuit breaker: stop trying a supplier (or channel) that keeps failing, for a
while, so the others keep flowing. Pure and in memory: each dispatcher keeps its own."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta


class CircuitBreaker:
    """Per lane: after `failures` failed attempts in a row, stop trying for a cooldown that
    doubles with each further failure (up to `cap`), so a supplier that is down is not
    hammered while the other lanes keep flowing. In memory, per dispatcher."""

    def __init__(self, *, failures: int = 3, cooldown: float = 30.0, cap: float = 900.0) -> None:
        self.failures, self.cooldown, self.cap = failures, cooldown, cap
        self._count: dict[str, int] = {}
        self._open_until: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def record_success(self, lane: str) -> None:
        with self._lock:
            self._count.pop(lane, None)
            self._open_until.pop(lane, None)

    def record_failure(self, lane: str, now: datetime) -> datetime | None:
        """Count a failure; returns until when the circuit is open, if it is."""
        with self._lock:
            count = self._count.get(lane, 0) + 1
            self._count[lane] = count
            if count < self.failures:
                return None
            wait_s = min(self.cap, self.cooldown * 2.0 ** (count - self.failures))
            until = now + timedelta(seconds=wait_s)
            self._open_until[lane] = until
            return until

    def open_lanes(self, now: datetime) -> set[str]:
        with self._lock:
            return {lane for lane, until in self._open_until.items() if until > now}
