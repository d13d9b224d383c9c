"""Receiving deliveries: store each one exactly once, and the order it carries, never backwards.

A webhook is taken in two steps, each one transaction:

1. `accept_delivery` (in the request): the verified delivery is stored in `webhook_events`,
   once per delivery id, as `pending`, and acknowledged. That is all the platform waits for, so
   it is as cheap as storing a raw body can be. Deliveries that need no work (an ignored topic,
   another shop) are settled here.
2. `apply_pending` (in the dispatcher, within a second; on SQLite right after a burst of
   webhooks, see `app.pacing.GiveWay`): each pending delivery is decoded and
   normalized outside any transaction; then one transaction claims it, upserts the order (never
   backwards), routes it, writes its purchase orders and outbox jobs, and marks the delivery
   processed (or quarantined, or stale).

A delivery is acknowledged only once it is committed, so nothing acknowledged is lost; a
worker that dies mid-way leaves it pending for the next one. `receive_delivery` does both
steps in one transaction, for the orders sync, which already runs in a worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.channels.base import Channel, Delivery, OrderData, OrderReference, TopicAction
from app.db import Database
from app.errors import NotFound, PayloadInvalid
from app.logs import bind
from app.metrics import INTAKE_APPLIED, INTAKE_DELAY_SECONDS
from app.models import EventStatus, Order, OrderLine, OrderStatus, WebhookEvent
from app.pacing import GiveWay
from app.purchasing import Purchasing, route_order
from app.types import new_id, utcnow

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # stored as pending; `apply_pending` takes it from there
    PROCESSED = "processed"
    STALE = "stale"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class IntakeResult:
    outcome: Outcome
    event_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Interpretation:
    """What a delivery means, decided without the database."""

    status: str
    order: OrderData | None = None
    reference: OrderReference | None = None
    reason: str | None = None


def screen(channel: Channel, topic: str, account: str | None = None) -> Interpretation | None:
    """What a delivery means when its headers already say it (no order to apply), else None."""
    if account is not None and not channel.account_allowed(account):
        return Interpretation(EventStatus.IGNORED,
                              reason=f"account {account!r} is not the one configured")
    if not topic:
        return Interpretation(EventStatus.QUARANTINED, reason="delivery has no topic")
    if channel.topic_action(topic) is TopicAction.IGNORE:
        return Interpretation(EventStatus.IGNORED, reason=f"topic {topic} is not processed")
    return None


def interpret(channel: Channel, topic: str, raw_body: bytes,
              account: str | None = None) -> Interpretation:
    """Decide what a verified delivery's body means; never raises for bad content."""
    screened = screen(channel, topic, account)
    if screened is not None:
        return screened
    try:
        payload = json.loads(raw_body, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        return Interpretation(EventStatus.QUARANTINED, reason=f"body is not valid JSON: {exc}")
    try:
        parsed = channel.parse_event(topic, payload)
    except PayloadInvalid as exc:
        return Interpretation(EventStatus.QUARANTINED, reason=exc.reason)
    except Exception as exc:  # a parser bug must not lose a signed delivery: keep it, replay later
        log.exception("parser failed on a %s delivery", topic)
        return Interpretation(EventStatus.QUARANTINED, reason=f"parser error: {exc!r}"[:2000])
    if isinstance(parsed, OrderReference):
        return Interpretation(EventStatus.PROCESSED, reference=parsed)
    return Interpretation(EventStatus.PROCESSED, order=parsed)


def supersedes(
    incoming: OrderData, stored_updated_at: datetime, stored_cancelled: bool, *,
    incoming_triggered_at: datetime | None = None, stored_triggered_at: datetime | None = None,
) -> bool:
    """The out-of-order rule: may `incoming` replace the stored version of the order?

    A strictly older version never does. At an equal `updated_at` (Shopify's has whole seconds),
    the platform's sub-second trigger time decides when both deliveries carry one; otherwise the
    equal version applies (a replay), except that it cannot undo a stored cancellation.
    """
    if incoming.source_updated_at < stored_updated_at:
        return False
    if incoming.source_updated_at > stored_updated_at:
        return True
    if (incoming_triggered_at is not None and stored_triggered_at is not None
            and incoming_triggered_at < stored_triggered_at):
        return False
    if stored_cancelled:
        return incoming.is_cancelled
    return True


def accept_delivery(conn: Connection, *, channel: Channel, delivery: Delivery,
                    raw_body: bytes) -> IntakeResult:
    """Store a verified delivery once, to be applied by `apply_pending`. The caller commits.

    ACCEPTED (stored as pending) or DUPLICATE; IGNORED or QUARANTINED when the headers settle
    it (an ignored topic, another shop, no topic). A plain connection, not a session: this is
    every webhook's request, and one INSERT needs no unit of work.
    """
    screened = screen(channel, delivery.topic, delivery.account)
    meaning = screened or Interpretation(EventStatus.PENDING)
    event = _event_row(delivery, raw_body, meaning)
    if not _insert_event(conn, event):
        return IntakeResult(Outcome.DUPLICATE)
    if screened is None:
        return IntakeResult(Outcome.ACCEPTED, event["id"])
    settled = _settled(event["id"], screened)
    assert settled is not None  # screen() only says ignored or quarantined
    return settled


def receive_delivery(
    session: Session, *, channel: Channel, delivery: Delivery, raw_body: bytes,
    purchasing: Purchasing,
) -> IntakeResult:
    """Store a delivery once and apply the order it carries, in one transaction (for the orders
    sync, which runs in a worker already). The caller commits."""
    meaning = interpret(channel, delivery.topic, raw_body, delivery.account)
    event = _event_row(delivery, raw_body, meaning)
    if not _insert_event(session.connection(), event):
        return IntakeResult(Outcome.DUPLICATE)
    return _apply(session, event["id"], delivery.channel, delivery.account, meaning, purchasing,
                  delivery.triggered_at)


@dataclass(frozen=True)
class _Pending:
    id: uuid.UUID
    channel: str
    account: str
    delivery_id: str
    topic: str
    triggered_at: datetime | None
    received_at: datetime
    raw_body: bytes


def apply_pending(db: Database, *, channels: Mapping[str, Channel], purchasing: Purchasing,
                  limit: int = 100, give_way: GiveWay | None = None) -> Counter[Outcome]:
    """Apply up to `limit` pending deliveries, oldest first; returns how each one ended.

    Each is decoded before its transaction and applied in one of its own, which first claims it
    (pending -> its outcome): a delivery another worker got to first is skipped, so several
    dispatchers may run at once. A database error (a lock timeout, a lost connection) leaves the
    delivery pending and is raised; the next call takes it up again. `give_way` paces the
    transactions while deliveries pile up (see `app.pacing.GiveWay`).
    """
    with db.read_session() as session:
        rows = [_Pending(*row) for row in session.execute(_pending_query(), {"limit": limit})]
    outcomes: Counter[Outcome] = Counter()
    for row in rows:
        channel = channels.get(row.channel)
        meaning = (interpret(channel, row.topic, row.raw_body, row.account) if channel
                   else Interpretation(EventStatus.QUARANTINED,
                                       reason=f"channel {row.channel!r} is not configured"))
        with bind(delivery_id=row.delivery_id), db.session() as session:
            if not _claim(session, row.id, meaning):
                continue  # another worker applied it
            # The claim took the write lock (SQLite); what follows holds it until the commit.
            with give_way.holding() if give_way else contextlib.nullcontext():
                result = _apply(session, row.id, row.channel, row.account, meaning,
                                purchasing, row.triggered_at)
                session.commit()
            outcomes[result.outcome] += 1
            INTAKE_APPLIED.labels(row.channel, result.outcome.value).inc()
            INTAKE_DELAY_SECONDS.labels(row.channel).observe(
                max(0.0, (utcnow() - row.received_at).total_seconds()))
            with bind(order_id=result.order_id):
                log.info("%s delivery %s (%s) %s event=%s order=%s", row.channel,
                         row.delivery_id, row.topic, result.outcome.value, row.id,
                         result.order_id)
    return outcomes


def _claim(session: Session, event_id: uuid.UUID, meaning: Interpretation) -> bool:
    """Move a pending delivery to what it turned out to be; False if it is not pending."""
    claimed = session.connection().execute(_sql(session).claim_event, {
        "_id": event_id, "_pending": EventStatus.PENDING, **_event_state(meaning),
    })
    return claimed.rowcount == 1


def _event_row(delivery: Delivery, raw_body: bytes, meaning: Interpretation) -> dict[str, Any]:
    # Columns left out take their defaults (NULL; replays 0): fewer values to bind per webhook.
    return {
        "id": new_id(),
        "channel": delivery.channel,
        "delivery_id": delivery.delivery_id,
        "event_id": delivery.event_id,
        "topic": delivery.topic,
        "account": delivery.account,
        "api_version": delivery.api_version,
        "triggered_at": delivery.triggered_at,
        "received_at": utcnow(),
        "raw_body": raw_body,
        **{k: v for k, v in _event_state(meaning).items() if v is not None},
    }


def _event_state(meaning: Interpretation) -> dict[str, Any]:
    return {
        "status": meaning.status,
        "error": meaning.reason if meaning.status == EventStatus.QUARANTINED else None,
        "note": meaning.reason if meaning.status == EventStatus.IGNORED else None,
    }


def _insert_event(conn: Connection, event: dict[str, Any]) -> bool:
    """Insert the delivery; False if its delivery id is already stored (a repeat).

    A plain INSERT and its unique constraint decide, rather than INSERT ... ON CONFLICT, whose
    statement SQLAlchemy cannot cache (it would be compiled again for every delivery). On SQLite
    a failed statement leaves the transaction usable; PostgreSQL needs a savepoint for that.
    """
    sql = _statements(conn.dialect.name)
    try:
        if sql.dialect == "postgresql":
            with conn.begin_nested():
                conn.execute(sql.insert_event, event)
        else:
            conn.execute(sql.insert_event, event)
    except IntegrityError:
        key = {"channel": event["channel"], "delivery_id": event["delivery_id"]}
        if conn.execute(sql.find_event, key).first() is None:
            raise  # some other constraint: a bug, not a repeat
        return False
    return True


def replay_event(
    session: Session, *, channels: Mapping[str, Channel], ref: str, purchasing: Purchasing
) -> IntakeResult:
    """Re-run a stored delivery (by OrderHub event id or platform delivery id) after a fix."""
    event = _find_event(session, ref)
    channel = channels.get(event.channel)
    if channel is None:
        raise NotFound(f"channel {event.channel!r} of event {event.id} is not configured")
    meaning = interpret(channel, event.topic, event.raw_body, event.account)
    for key, value in _event_state(meaning).items():
        setattr(event, key, value)
    event.replays += 1
    session.flush()
    return _apply(session, event.id, event.channel, event.account, meaning, purchasing,
                  event.triggered_at)


def _settled(event_id: uuid.UUID, meaning: Interpretation) -> IntakeResult | None:
    """The result of a delivery with nothing to apply (ignored, quarantined), else None."""
    if meaning.status == EventStatus.IGNORED:
        return IntakeResult(Outcome.IGNORED, event_id, reason=meaning.reason)
    if meaning.status == EventStatus.QUARANTINED:
        log.error("event %s quarantined: %s", event_id, meaning.reason)
        return IntakeResult(Outcome.QUARANTINED, event_id, reason=meaning.reason)
    return None


def _apply(
    session: Session, event_id: uuid.UUID, channel: str, account: str, meaning: Interpretation,
    purchasing: Purchasing | None, triggered_at: datetime | None = None,
) -> IntakeResult:
    settled = _settled(event_id, meaning)
    if settled is not None:
        return settled
    if meaning.reference is not None:
        order_id = _order_id(session, channel, account, meaning.reference.external_id)
        note = meaning.reference.note if order_id else (
            meaning.reference.note + " (order not received yet)")
        _mark_event(session, event_id, order_id=order_id, note=note[:255])
        return IntakeResult(Outcome.PROCESSED, event_id, order_id)

    assert meaning.order is not None and purchasing is not None
    try:
        # A savepoint: if the database refuses this order, or routing it hits a bug, the
        # delivery is kept as quarantined (replayable after a fix) instead of being lost.
        with session.begin_nested():
            order_id, applied = upsert_order(session, channel, account, meaning.order,
                                             triggered_at=triggered_at)
            if applied:
                route_order(session, order_id=order_id, purchasing=purchasing, now=utcnow())
    except OperationalError:
        raise  # lock timeout, lost connection: the platform retries on our 503
    except (IntegrityError, DataError) as exc:
        return _quarantine(session, event_id, f"database refused the order: {exc.orig}")
    except Exception as exc:
        log.exception("event %s: processing failed", event_id)
        return _quarantine(session, event_id, f"internal error while processing: {exc!r}")

    if applied:
        _mark_event(session, event_id, order_id=order_id)
        return IntakeResult(Outcome.PROCESSED, event_id, order_id)
    _mark_event(session, event_id, order_id=order_id,
                note="stale: a newer version of the order is already stored")
    return IntakeResult(Outcome.STALE, event_id, order_id)


def _quarantine(session: Session, event_id: uuid.UUID, reason: str) -> IntakeResult:
    reason = reason[:2000]
    log.error("event %s quarantined: %s", event_id, reason)
    _mark_event(session, event_id, status=EventStatus.QUARANTINED, error=reason)
    return IntakeResult(Outcome.QUARANTINED, event_id, reason=reason)


def upsert_order(
    session: Session, channel: str, account: str, data: OrderData, *,
    triggered_at: datetime | None = None,
) -> tuple[uuid.UUID, bool]:
    """Insert the order or bring it up to `data`; returns (order id, whether it was applied)."""
    sql = _sql(session)
    conn = session.connection()
    key = {"channel": channel, "account": account, "external_id": data.external_id}
    existing = conn.execute(sql.lock_order, key).first()
    if existing is None:
        order_id = new_id()
        now = utcnow()
        inserted = conn.execute(sql.insert_order, {
            **key, "id": order_id, "status": _status_for(data, None), "created_at": now,
            "updated_at": now, "source_triggered_at": triggered_at, **_order_values(data),
        }).first()
        if inserted is not None:
            _insert_lines(session, order_id, data, start=0)
            return order_id, True
        # Another transaction inserted it first (PostgreSQL); fall through and update it.
        existing = conn.execute(sql.lock_order, key).first()
        assert existing is not None

    order_id, stored_updated_at, stored_cancelled_at, stored_status, stored_triggered = existing
    if not supersedes(data, stored_updated_at, stored_cancelled_at is not None,
                      incoming_triggered_at=triggered_at, stored_triggered_at=stored_triggered):
        return order_id, False
    conn.execute(sql.update_order, {
        "_id": order_id, "status": _status_for(data, stored_status), "updated_at": utcnow(),
        "source_triggered_at": triggered_at, **_order_values(data),
    })
    _update_lines(session, order_id, data)
    return order_id, True


def _status_for(data: OrderData, stored: str | None) -> str:
    if data.is_cancelled:
        return OrderStatus.CANCELLED
    return stored or OrderStatus.RECEIVED


def _order_values(data: OrderData) -> dict[str, Any]:
    customer = data.customer
    address = data.shipping_address
    return {
        "number": data.number,
        "financial_status": data.financial_status,
        "fulfillment_status": data.fulfillment_status,
        "cancelled_at": data.cancelled_at,
        "cancel_reason": data.cancel_reason,
        "test": data.test,
        "currency": data.currency,
        "subtotal_price": data.subtotal_price,
        "total_discounts": data.total_discounts,
        "total_shipping": data.total_shipping,
        "total_tax": data.total_tax,
        "total_price": data.total_price,
        "customer_email": customer.email if customer else None,
        "customer_name": customer.name if customer else None,
        "customer_phone": customer.phone if customer else None,
        # vars(), not asdict(): asdict deep-copies every field, and these are plain strings.
        "shipping_address": dict(vars(address)) if address else None,
        "note": data.note,
        "placed_at": data.placed_at,
        "source_updated_at": data.source_updated_at,
    }


def _line_values(data: OrderData) -> list[dict[str, Any]]:
    return [
        {
            "external_id": line.external_id,
            "sku": line.sku,
            "title": line.title,
            "variant_title": line.variant_title,
            "vendor": line.vendor,
            "product_id": line.product_id,
            "variant_id": line.variant_id,
            "quantity": line.quantity,
            "price": line.price,
            "total_discount": line.total_discount,
            "requires_shipping": line.requires_shipping,
            "gift_card": line.gift_card,
        }
        for line in data.lines
    ]


def _insert_lines(session: Session, order_id: uuid.UUID, data: OrderData, *, start: int) -> None:
    rows = [
        {**values, "id": new_id(), "order_id": order_id, "position": start + i,
         "shipped_quantity": 0}
        for i, values in enumerate(_line_values(data))
    ]
    if rows:
        session.connection().execute(_sql(session).insert_line, rows)


def _update_lines(session: Session, order_id: uuid.UUID, data: OrderData) -> None:
    known = dict(
        session.execute(
            select(OrderLine.external_id, OrderLine.id).where(OrderLine.order_id == order_id)
        ).tuples().all()
    )
    seen: set[str] = set()
    changed: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    for position, values in enumerate(_line_values(data)):
        seen.add(values["external_id"])
        line_id = known.get(values["external_id"])
        if line_id is None:
            added.append({**values, "id": new_id(), "order_id": order_id,
                          "position": position, "shipped_quantity": 0})
        else:
            changed.append({**values, "_id": line_id, "position": position})
    sql = _sql(session)
    if changed:
        session.connection().execute(sql.update_line, changed)
    if added:
        session.connection().execute(sql.insert_line, added)
    # A line the channel no longer lists is kept (it may be referenced) with nothing to ship.
    gone = [line_id for ext, line_id in known.items() if ext not in seen]
    if gone:
        session.execute(update(OrderLine).where(OrderLine.id.in_(gone)).values(quantity=0))


def _order_id(session: Session, channel: str, account: str, external_id: str) -> uuid.UUID | None:
    return session.execute(
        select(Order.id).where(
            Order.channel == channel, Order.account == account, Order.external_id == external_id
        )
    ).scalar_one_or_none()


def _mark_event(session: Session, event_id: uuid.UUID, **values: Any) -> None:
    session.connection().execute(_sql(session).update_event, {"_id": event_id, **values})


def _find_event(session: Session, ref: str) -> WebhookEvent:
    event = None
    with contextlib.suppress(ValueError):
        event = session.get(WebhookEvent, uuid.UUID(ref))
    if event is None:
        event = session.execute(
            select(WebhookEvent).where(WebhookEvent.delivery_id == ref)
        ).scalars().first()
    if event is None:
        raise NotFound(f"no stored delivery with event id or delivery id {ref!r}")
    return event


@dataclass(frozen=True)
class _Statements:
    dialect: str
    find_event: Select[tuple[uuid.UUID]]
    insert_event: Insert
    insert_order: Insert
    insert_line: Insert
    lock_order: Select[tuple[uuid.UUID, datetime, datetime | None, str, datetime | None]]
    update_order: Update
    update_line: Update
    update_event: Update
    claim_event: Update


def _sql(session: Session) -> _Statements:
    return _statements(session.get_bind().dialect.name)


@cache
def _statements(dialect: str) -> _Statements:
    """The intake's statements, built once: values come as parameters, so SQLAlchemy compiles
    each statement once per process instead of once per delivery."""
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"unsupported database {dialect}")
    upsert_insert: Any = postgresql.insert
    tables = WebhookEvent.metadata.tables
    events, orders, lines = tables["webhook_events"], tables["orders"], tables["order_lines"]
    lock = select(orders.c.id, orders.c.source_updated_at, orders.c.cancelled_at,
                  orders.c.status, orders.c.source_triggered_at).where(
        orders.c.channel == bindparam("channel"),
        orders.c.account == bindparam("account"),
        orders.c.external_id == bindparam("external_id"),
    )
    if dialect == "postgresql":
        lock = lock.with_for_update()
    # PostgreSQL may see two first deliveries of one order at once: ON CONFLICT settles it
    # (uncached, but only there). SQLite writers are serialized by BEGIN IMMEDIATE.
    insert_order = (upsert_insert(orders).on_conflict_do_nothing() if dialect == "postgresql"
                    else insert(orders))
    return _Statements(
        dialect=dialect,
        find_event=select(events.c.id).where(events.c.channel == bindparam("channel"),
                                             events.c.delivery_id == bindparam("delivery_id")),
        insert_event=insert(events),
        insert_order=insert_order.returning(orders.c.id),
        insert_line=insert(lines),
        lock_order=lock,
        update_order=update(orders).where(orders.c.id == bindparam("_id")),
        update_line=update(lines).where(lines.c.id == bindparam("_id")),
        update_event=update(events).where(events.c.id == bindparam("_id")),
        claim_event=update(events).where(events.c.id == bindparam("_id"),
                                         events.c.status == bindparam("_pending")),
    )


@cache
def _pending_query() -> Select[tuple[Any, ...]]:
    events = WebhookEvent.metadata.tables["webhook_events"]
    return (select(events.c.id, events.c.channel, events.c.account, events.c.delivery_id,
                   events.c.topic, events.c.triggered_at, events.c.received_at,
                   events.c.raw_body)
            .where(events.c.status == EventStatus.PENDING)
            .order_by(events.c.received_at, events.c.id)
            .limit(bindparam("limit")))
