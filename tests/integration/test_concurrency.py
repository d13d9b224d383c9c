"""Many deliveries at the same moment over real HTTP (a threaded server on loopback), applied
meanwhile by three workers at once: the same one is stored once, different ones are all stored,
and nobody sees a 5xx."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select
from werkzeug.serving import BaseWSGIServer, make_server

from app.models import Order, OrderLine, WebhookEvent
from tests.conftest import apply_deliveries, encode, hub_of, shopify_headers, shopify_payload

THREADS = 50


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    srv: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    srv.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=5)


def post_all_at_once(url: str, requests_to_send: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    barrier = threading.Barrier(len(requests_to_send))
    statuses: list[int] = [0] * len(requests_to_send)

    def send(i: int, body: bytes, headers: dict[str, str]) -> None:
        barrier.wait()
        statuses[i] = requests.post(f"{url}/webhooks/shopify", data=body, headers=headers,
                                    timeout=30).status_code

    threads = [threading.Thread(target=send, args=(i, b, h))
               for i, (b, h) in enumerate(requests_to_send)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses


@contextmanager
def workers_applying(app: Flask, workers: int = 3) -> Iterator[None]:
    """Dispatchers applying deliveries while the body runs, until none is left after it."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while not (apply_deliveries(app).total() == 0 and stop.is_set()):
                stop.wait(0.01)
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors


def counts(app: Flask) -> dict[str, int]:
    with hub_of(app).db.read_session() as s:
        return {
            model.__tablename__: int(s.execute(select(func.count()).select_from(model))
                                     .scalar_one())
            for model in (Order, OrderLine, WebhookEvent)
        }


def test_same_delivery_from_50_threads_is_stored_once(app: Flask, server: str) -> None:
    body = encode(shopify_payload())
    headers = shopify_headers(body, webhook_id="retried-delivery")

    with workers_applying(app):
        statuses = post_all_at_once(server, [(body, headers)] * THREADS)

    assert statuses == [200] * THREADS
    assert counts(app) == {"orders": 1, "order_lines": 3, "webhook_events": 1}


def test_50_different_orders_at_once_are_all_stored(app: Flask, server: str) -> None:
    batch: list[tuple[bytes, dict[str, str]]] = []
    for i in range(THREADS):
        payload: dict[str, Any] = shopify_payload()
        payload["id"] = 6_000_000_000_000 + i
        payload["name"] = f"#{2000 + i}"
        for n, line in enumerate(payload["line_items"]):
            line["id"] = 7_000_000_000_000 + i * 10 + n
        body = encode(payload)
        batch.append((body, shopify_headers(body)))

    with workers_applying(app):
        statuses = post_all_at_once(server, batch)

    assert statuses == [200] * THREADS
    assert counts(app) == {"orders": THREADS, "order_lines": 3 * THREADS,
                           "webhook_events": THREADS}


def test_different_deliveries_of_one_order_at_once_keep_the_newest(
    app: Flask, server: str
) -> None:
    batch: list[tuple[bytes, dict[str, str]]] = []
    for minute in range(20):
        payload = shopify_payload()
        payload["updated_at"] = f"2026-11-20T10:{minute:02d}:00-05:00"
        payload["note"] = f"version {minute}"
        body = encode(payload)
        batch.append((body, shopify_headers(body, topic="orders/updated")))

    with workers_applying(app):
        statuses = post_all_at_once(server, batch)

    assert statuses == [200] * 20
    assert counts(app) == {"orders": 1, "order_lines": 3, "webhook_events": 20}
    with hub_of(app).db.read_session() as s:
        assert s.execute(select(Order.note)).scalar_one() == "version 19"
