"""The durable job queue: jobs are written in the caller's transaction (so an order and the
purchase orders it causes are committed together with their uploads-to-do), claimed by
dispatchers with a lease, retried with exponential backoff and jitter, and dead-lettered.

A claimed job is `running` until its lease ends; a dispatcher that dies mid-job leaves it
`running`, and once the lease has expired any dispatcher may claim it again. On PostgreSQL
claims use `FOR UPDATE SKIP LOCKED`, so several dispatchers never take the same job; on SQLite
the claim runs in a `BEGIN IMMEDIATE` transaction, which serializes dispatchers.

Every function here works inside the caller's session and never commits.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.models import JobStatus, OutboxJob
from app.types import new_id

OPEN = (JobStatus.PENDING, JobStatus.RUNNING)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between attempts, and when to give up."""

    base_seconds: float = 60.0       # the first retry comes after 30-60 s
    cap_seconds: float = 3600.0      # no wait is ever longer than this
    give_up_after: timedelta = timedelta(hours=24)  # of trying, from the first attempt
    lease_seconds: float = 300.0     # a claimed job is retried when its dispatcher vanished

    def delay(self, attempts: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after `attempts` failed attempts: exponential, capped, with jitter
        (a random point in the upper half, so jobs that failed together spread out)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** max(0, attempts - 1))
        return ceiling / 2 + rand() * ceiling / 2


@dataclass(frozen=True)
class Job:
    """A claimed job as a dispatcher sees it."""

    id: uuid.UUID
    kind: str
    target: str
    lane: str
    attempts: int                    # including the one just claimed
    first_attempt_at: datetime
    created_at: datetime
    data: dict[str, Any] | None


def job_row(*, kind: str, target: str, lane: str, now: datetime,
            data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values of a new job, due at once; insert with `insert_jobs`."""
    return {"id": new_id(), "kind": kind, "target": target, "lane": lane,
            "status": JobStatus.PENDING, "attempts": 0, "next_attempt_at": now,
            "first_attempt_at": None, "lease_owner": None, "lease_until": None,
            "last_error": None, "data": data, "created_at": now, "updated_at": now,
            "finished_at": None}


def insert_jobs(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add jobs in the caller's transaction (one statement for any number)."""
    if rows:
        session.connection().execute(_insert(), rows)


def enqueue(session: Session, *, kind: str, target: str, lane: str, now: datetime,
            data: dict[str, Any] | None = None) -> uuid.UUID:
    """Add one job in the caller's transaction and return its id."""
    row = job_row(kind=kind, target=target, lane=lane, now=now, data=data)
    insert_jobs(session, [row])
    job_id: uuid.UUID = row["id"]
    return job_id


def claim_due_jobs(session: Session, *, owner: str, now: datetime, policy: RetryPolicy,
                   lane: str | None = None, limit: int = 50) -> list[Job]:
    """Take up to `limit` due jobs (of one lane, if given) for `owner` until the lease ends."""
    t = _table()
    stmt = (select(t.c.id).where(_due(t, now)).order_by(t.c.next_attempt_at, t.c.created_at)
            .limit(limit))
    if lane is not None:
        stmt = stmt.where(t.c.lane == lane)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = list(session.execute(stmt).scalars())
    if not ids:
        return []
    session.execute(
        update(t).where(t.c.id.in_(ids)).values(
            status=JobStatus.RUNNING, lease_owner=owner,
            lease_until=now + timedelta(seconds=policy.lease_seconds),
            attempts=t.c.attempts + 1,
            first_attempt_at=func.coalesce(t.c.first_attempt_at, now), updated_at=now))
    rows = session.execute(
        select(t.c.id, t.c.kind, t.c.target, t.c.lane, t.c.attempts, t.c.first_attempt_at,
               t.c.created_at, t.c.data)
        .where(t.c.id.in_(ids)).order_by(t.c.next_attempt_at, t.c.created_at))
    return [Job(**row._mapping) for row in rows]


def renew(session: Session, job_id: uuid.UUID, *, owner: str, now: datetime,
          policy: RetryPolicy) -> bool:
    """Extend `owner`'s lease on a job it is about to work on; False when the lease was lost
    (it expired and another dispatcher claimed the job): then leave the job alone."""
    t = _table()
    result = session.execute(update(t).where(
        t.c.id == job_id, t.c.lease_owner == owner, t.c.status == JobStatus.RUNNING)
        .values(lease_until=now + timedelta(seconds=policy.lease_seconds), updated_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def due_lanes(session: Session, *, now: datetime, exclude: Collection[str] = (),
              limit: int = 10) -> list[str]:
    """Lanes that have due jobs, the one waiting longest first."""
    t = _table()
    stmt = (select(t.c.lane).where(_due(t, now)).group_by(t.c.lane)
            .order_by(func.min(t.c.next_attempt_at)).limit(limit))
    if exclude:
        stmt = stmt.where(t.c.lane.not_in(list(exclude)))
    return list(session.execute(stmt).scalars())


def complete(session: Session, job_id: uuid.UUID, *, now: datetime,
             note: str | None = None) -> None:
    """The job's work is done (`note` says how, e.g. "already on the server")."""
    _finish(session, [job_id], JobStatus.DONE, now=now, error=note)


def cancel(session: Session, job_id: uuid.UUID, *, now: datetime, reason: str) -> None:
    """Nothing is left to do for this job (e.g. its purchase order was withdrawn)."""
    _finish(session, [job_id], JobStatus.CANCELLED, now=now, error=reason)


def bury(session: Session, job_ids: Iterable[uuid.UUID], *, now: datetime, error: str) -> None:
    """Give up on these jobs: `dead` until an operator resends them."""
    _finish(session, list(job_ids), JobStatus.DEAD, now=now, error=error)


def retry_later(session: Session, job: Job, *, now: datetime, error: str, policy: RetryPolicy,
                rand: Callable[[], float] = random.random) -> datetime | None:
    """Schedule the next attempt with backoff; bury the job when it has been tried for
    `policy.give_up_after`. Returns when it is due again, or None if it is now dead."""
    if now - job.first_attempt_at >= policy.give_up_after:
        bury(session, [job.id], now=now,
             error=f"gave up after {job.attempts} attempts since "
                   f"{job.first_attempt_at.isoformat(timespec='seconds')}: {error}")
        return None
    due = now + timedelta(seconds=policy.delay(job.attempts, rand))
    t = _table()
    session.execute(update(t).where(t.c.id == job.id).values(
        status=JobStatus.PENDING, next_attempt_at=due, lease_owner=None, lease_until=None,
        last_error=error, updated_at=now))
    return due


def release(session: Session, job_ids: Iterable[uuid.UUID], *, now: datetime,
            due: datetime | None = None) -> None:
    """Hand claimed jobs back untried (the dispatcher is stopping, or their lane is failing):
    due at `due` (default now), no attempt used."""
    ids = list(job_ids)
    if not ids:
        return
    t = _table()
    session.execute(update(t).where(t.c.id.in_(ids), t.c.status == JobStatus.RUNNING).values(
        status=JobStatus.PENDING, attempts=t.c.attempts - 1, lease_owner=None,
        lease_until=None, next_attempt_at=due or now, updated_at=now))


def depth(session: Session, *, now: datetime) -> list[dict[str, Any]]:
    """Per kind and status: how many jobs, and the oldest next attempt (for /api and metrics)."""
    t = _table()
    rows = session.execute(
        select(t.c.kind, t.c.status, func.count(), func.min(t.c.next_attempt_at))
        .where(t.c.status.in_((*OPEN, JobStatus.DEAD)))
        .group_by(t.c.kind, t.c.status).order_by(t.c.kind, t.c.status))
    return [{"kind": kind, "status": status, "count": count,
             "oldest_due_seconds": max(0.0, (now - oldest).total_seconds()) if oldest else None}
            for kind, status, count, oldest in rows]


def _finish(session: Session, ids: list[uuid.UUID], status: str, *, now: datetime,
            error: str | None) -> None:
    if not ids:
        return
    t = _table()
    session.execute(update(t).where(t.c.id.in_(ids)).values(
        status=status, finished_at=now, lease_owner=None, lease_until=None, last_error=error,
        updated_at=now))


def _due(t: Table, now: datetime) -> Any:
    return or_(and_(t.c.status == JobStatus.PENDING, t.c.next_attempt_at <= now),
               and_(t.c.status == JobStatus.RUNNING, t.c.lease_until < now))


def _table() -> Table:
    table: Table = OutboxJob.__table__  # type: ignore[assignment]
    return table


@cache
def _insert() -> Insert:
    return insert(_table())
