"""`/healthz` (the process answers), `/readyz` (the database answers, with the schema this code
needs) and `/metrics` (Prometheus).

`/metrics` shows order volumes and supplier names, so it is not public: with METRICS_TOKEN set
it wants `Authorization: Bearer $METRICS_TOKEN` from anyone; without, it answers loopback
clients only (Prometheus on this host, or through nginx, which passes the client's address on
when TRUST_PROXY is set; a request on gunicorn's unix socket without it has no address).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from app.db import code_revisions, current_revision
from app.gauges import DatabaseGauges
from app.hub import hub
from app.metrics import scrape

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

UPGRADE = "run `flask --app wsgi db upgrade`"


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database answers and its schema is at this code's head revision (or a
    newer one: migrations run before the code is restarted); 503 with the reason otherwise."""
    try:
        with hub().db.read_session() as session:
            current = current_revision(session.connection())
    except SQLAlchemyError as exc:
        log.error("readiness check failed: %s", exc)
        return jsonify(status="unavailable", error="database unreachable"), 503
    head, known = code_revisions()
    if current == head:
        return jsonify(status="ready"), 200
    if current is None:
        error = f"database schema not created: {UPGRADE}"
    elif current in known:
        error = f"database schema is behind: at {current}, this code needs {head}: {UPGRADE}"
    else:
        log.warning("database schema %s is newer than this code (%s)", current, head)
        return jsonify(status="ready", schema=current,
                       warning=f"database schema {current} is newer than this code's {head}"), 200
    log.error("readiness check failed: %s", error)
    return jsonify(status="unavailable", error=error, schema=current, head=head), 503


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int]:
    services = hub()
    token = services.settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                  token.encode()):
            response = jsonify(error="missing or wrong metrics token (Authorization: Bearer "
                                     "$METRICS_TOKEN)")
            response.headers["WWW-Authenticate"] = 'Bearer realm="orderhub-metrics"'
            return response, 401
    elif not _loopback(request.remote_addr):
        log.warning("metrics refused to %s: not loopback and METRICS_TOKEN is not set",
                    request.remote_addr or "a client without an address")
        return jsonify(error="metrics are served to loopback clients only; set METRICS_TOKEN "
                             "to allow others"), 403
    body, content_type = scrape(DatabaseGauges(services.db))
    return Response(body, content_type=content_type)


def _loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
