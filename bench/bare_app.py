"""The floor the real webhook endpoint is measured against: verify the HMAC, insert the raw body.

Same stack as OrderHub — Flask, gunicorn with `deploy/gunicorn.conf.py`, and `app.db.make_engine`,
so SQLite gets the same WAL / synchronous / busy-timeout / `BEGIN IMMEDIATE` settings — and
nothing else: no JSON decoding, no order parsing, no ORM session, no metrics, no logging. What the
real endpoint costs above this is what its own code costs.

`bench/ingest.py` serves it as `gunicorn -c deploy/gunicorn.conf.py 'bench.bare_app:create_app()'`
with DATABASE_URL and SHOPIFY_WEBHOOK_SECRET in the environment.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

from flask import Flask, Response, jsonify, request
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, insert
from sqlalchemy.exc import IntegrityError

from app.channels.shopify import signature_matches
from app.db import make_engine

TABLE = "bench_deliveries"
metadata = MetaData()
deliveries = Table(
    TABLE,
    metadata,
    Column("id", Integer, primary_key=True),
    # Unique, like webhook_events (channel, delivery_id): the floor dedupes deliveries too.
    Column("delivery_id", String(255), nullable=False, unique=True),
    Column("raw_body", LargeBinary, nullable=False),
)


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """The bare app: one route, `POST /webhooks/shopify`, writing into `bench_deliveries`."""
    env = os.environ if env is None else env
    engine = make_engine(env["DATABASE_URL"])
    metadata.create_all(engine)
    # gunicorn preloads the app and then forks: no worker may inherit this open SQLite connection.
    engine.dispose()
    keys = (env["SHOPIFY_WEBHOOK_SECRET"].encode(),)
    # A plain INSERT, which SQLAlchemy compiles once per process; the unique constraint catches a
    # repeat. (The sqlite dialect's INSERT ... ON CONFLICT has no cache key in SQLAlchemy 2.0
    # and would be compiled again for every request.)
    stmt = insert(deliveries)

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=2 * 1024 * 1024)

    @app.post("/webhooks/shopify")
    def receive() -> tuple[Response, int]:
        raw_body = request.get_data(cache=False)
        given = (request.headers.get("X-Shopify-Hmac-Sha256") or "").strip()
        if not given or not signature_matches(keys, raw_body, given):
            return jsonify(error="invalid signature"), 401
        delivery_id = (request.headers.get("X-Shopify-Webhook-Id") or "").strip()[:255]
        if not delivery_id:
            delivery_id = "sha256:" + hashlib.sha256(raw_body).hexdigest()
        # One transaction (BEGIN IMMEDIATE from make_engine's "begin" hook), one statement.
        try:
            with engine.begin() as conn:
                conn.execute(stmt, {"delivery_id": delivery_id, "raw_body": raw_body})
        except IntegrityError:
            return jsonify(status="duplicate"), 200
        return jsonify(status="accepted"), 200

    return app
