"""`POST /webhooks/<channel>`: verify, store once, acknowledge. Nothing slow happens here: the
dispatcher applies the stored delivery (order, routing, purchase orders) within a second, or
right after a burst (see `app.pacing.GiveWay`)."""

from __future__ import annotations

import logging
import time
from functools import cache

from flask import Blueprint, Response, jsonify, request
from prometheus_client import Counter, Histogram

from app.errors import SignatureInvalid
from app.hub import hub
from app.intake import accept_delivery
from app.logs import bind
from app.metrics import INGEST_SECONDS, WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/<channel_name>")
def receive(channel_name: str) -> tuple[Response, int]:
    started = time.perf_counter()
    services = hub()
    channel = services.channels.get(channel_name)
    if channel is None:
        return jsonify(error=f"channel {channel_name!r} is not configured"), 404
    raw_body = request.get_data(cache=False)  # 413 past MAX_BODY_BYTES
    try:
        delivery = channel.verify(request.headers, raw_body)
    except SignatureInvalid as exc:
        _deliveries(channel_name, "unauthorized").inc()
        log.warning("%s webhook refused from %s: %s", channel_name, request.remote_addr, exc)
        return jsonify(error="invalid signature"), 401

    with bind(delivery_id=delivery.delivery_id):
        with services.db.engine.begin() as conn:
            result = accept_delivery(conn, channel=channel, delivery=delivery, raw_body=raw_body)
        _deliveries(channel_name, result.outcome.value).inc()
        _ingest_seconds(channel_name).observe(time.perf_counter() - started)
        log.info("%s delivery %s (%s) %s event=%s", channel_name, delivery.delivery_id,
                 delivery.topic, result.outcome.value, result.event_id)
    body = {"status": result.outcome.value}
    if result.event_id:
        body["event_id"] = str(result.event_id)
    return jsonify(body), 200


# Each webhook counts into the same few labelled series: look each one up once per process
# (`labels()` checks and converts its arguments every time). Channel names come from the
# route, but only configured ones get here.
@cache
def _deliveries(channel: str, result: str) -> Counter:
    return WEBHOOK_DELIVERIES.labels(channel, result)


@cache
def _ingest_seconds(channel: str) -> Histogram:
    return INGEST_SECONDS.labels(channel)
