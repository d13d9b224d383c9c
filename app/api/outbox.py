"""The outbox as an operator sees it: what waits, what is being sent, what is dead."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from app import outbox, queries
from app.api import BadRequest, bp
from app.api.orders import _limit
from app.hub import hub
from app.models import JobStatus, OutboxJob
from app.types import utcnow

STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.DONE, JobStatus.DEAD,
            JobStatus.CANCELLED)


@bp.get("/outbox")
def list_outbox() -> Response:
    """Jobs newest first; `status`, `kind`, `lane` (supplier) filters; `offset` paging; with
    the counts and oldest due job per kind and status."""
    limit = _limit(request.args.get("limit"))
    try:
        offset = int(request.args.get("offset", "0"))
    except ValueError:
        raise BadRequest("offset: not a whole number") from None
    if not 0 <= offset <= 1_000_000:
        raise BadRequest("offset: must be between 0 and 1000000")
    status = request.args.get("status")
    if status and status not in STATUSES:
        raise BadRequest(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    with hub().db.read_session() as session:
        jobs = queries.select_jobs(session, limit=limit, offset=offset, status=status,
                                   kind=request.args.get("kind"), lane=request.args.get("lane"))
        summary = outbox.depth(session, now=utcnow())
    return jsonify(jobs=[job_json(job) for job in jobs], summary=summary)


def job_json(job: OutboxJob) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": str(job.id), "kind": job.kind, "target": job.target, "lane": job.lane,
        "status": job.status, "attempts": job.attempts,
        "next_attempt_at": iso(job.next_attempt_at),
        "first_attempt_at": iso(job.first_attempt_at), "lease_owner": job.lease_owner,
        "lease_until": iso(job.lease_until), "last_error": job.last_error, "data": job.data,
        "created_at": iso(job.created_at), "finished_at": iso(job.finished_at),
    }
