"""`POST /webhooks/<channel>`: verify, store once, acknowledge. Nothing slow happens here: the
dispatcher applies the stored delivery (order, routing, purchase orders) within a second, or
right after a burst (see `app.pacing.GiveWay`)."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, jsonify, request

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
        WEBHOOK_DELIVERIES.labels(channel_name, "unauthorized").inc()
        log.warning("%s webhook refused from %s: %s", channel_name, request.remote_addr, exc)
        return jsonify(error="invalid signature"), 401

    with bind(delivery_id=delivery.delivery_id), services.db.engine.begin() as conn:
        result = accept_delivery(conn, channel=channel, delivery=delivery, raw_body=raw_body)

    WEBHOOK_DELIVERIES.labels(channel_name, result.outcome.value).inc()
    INGEST_SECONDS.labels(channel_name).observe(time.perf_counter() - started)
    with bind(delivery_id=delivery.delivery_id):
        log.info("%s delivery %s (%s) %s event=%s", channel_name, delivery.delivery_id,
                 delivery.topic, result.outcome.value, result.event_id)
    body = {"status": result.outcome.value}
    if result.event_id:
        body["event_id"] = str(result.event_id)
    return jsonify(body), 200
