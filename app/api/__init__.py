"""The JSON API under `/api/`, behind `Authorization: Bearer $ORDERHUB_API_TOKEN`."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request

from app.hub import hub

bp = Blueprint("api", __name__, url_prefix="/api")


class BadRequest(Exception):
    """A query parameter or body field the API cannot use; the message names it."""


@bp.before_request
def require_token() -> tuple[Response, int] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = hub().settings.api_token.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        response = jsonify(error="missing or wrong API token (Authorization: Bearer ...)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="orderhub"'
        return response, 401
    return None


@bp.before_request
def refuse_nul_characters() -> tuple[Response, int] | None:
    # PostgreSQL cannot even compare a string with a NUL in it; say so instead of failing.
    for name, value in request.args.items():
        if "\x00" in value:
            return jsonify(error=f"{name}: contains a NUL character"), 400
    return None


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


from app.api import inventory, orders, outbox, purchase_orders  # noqa: E402,F401  (registers the routes on bp)
