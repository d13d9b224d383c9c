"""`/healthz` (the process answers) and `/readyz` (the database answers)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import SQLAlchemyError

from app.hub import hub

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    try:
        hub().db.ping()
    except SQLAlchemyError as exc:
        log.error("readiness check failed: %s", exc)
        return jsonify(status="unavailable", error="database unreachable"), 503
    return jsonify(status="ready"), 200
