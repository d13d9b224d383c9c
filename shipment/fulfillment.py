"""Pushing a recorded shipment to the sales channel as a fulfillment with tracking (the
`push_fulfillment` outbox job). The call happens outside any transaction; its result is
committed afterwards."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.channels.base import ChannelApi, PushResult, ShipmentPush
from app.db import Database
from app.models import Order, Shipment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushPlan:
    """What to send for one shipment, read before the call."""

    shipment_id: uuid.UUID
    order_external_id: str
    order_number: str
    push: ShipmentPush


def plan_push(db: Database, shipment_id: str) -> PushPlan | None:
    """The shipment's lines and tracking in the channel's terms (None if it is gone or done)."""
    try:
        key = uuid.UUID(shipment_id)
    except ValueError:
        return None
    with db.read_session() as session:
        row = session.execute(select(Shipment, Order.external_id, Order.number)
                              .join(Order, Order.id == Shipment.order_id)
                              .where(Shipment.id == key)).one_or_none()
        if row is None or row[0].push_status == "pushed":
            return None
        shipment, external_id, number = row
        lines = tuple((str(line["external_id"]), int(line["quantity"]))
                      for line in shipment.lines)
        return PushPlan(shipment.id, external_id, number, ShipmentPush(
            lines=lines, carrier=shipment.carrier, tracking_number=shipment.tracking_number,
            tracking_url=shipment.tracking_url))


def push(api: ChannelApi, plan: PushPlan) -> PushResult:
    """Make the channel call (raises `ChannelApiError`)."""
    return api.push_fulfillment(plan.order_external_id, plan.push)


def record_pushed(db: Database, plan: PushPlan, result: PushResult, now: datetime) -> None:
    with db.session() as session:
        shipment = session.get(Shipment, plan.shipment_id)
        if shipment is not None:
            shipment.push_status = "pushed"
            shipment.pushed_at = now
            shipment.channel_reference = (result.reference or
                                          ("already fulfilled" if result.already_done else None))
            session.commit()
    log.info("order %s: fulfillment pushed for shipment %s (%s)%s", plan.order_number,
             plan.shipment_id, result.reference or "already fulfilled",
             f"; {result.note}" if result.note else "")


def record_dead(db: Database, shipment_id: uuid.UUID) -> None:
    with db.session() as session:
        shipment = session.get(Shipment, shipment_id)
        if shipment is not None:
            shipment.push_status = "dead"
            session.commit()
