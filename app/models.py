"""The tables, as SQLAlchemy 2.0 typed models. Migrations in `app/migrations/` create them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.types import Money, UTCDateTime, new_id, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money(), dict[str, Any]: JSON()}


class EventStatus:
    PENDING = "pending"  # acknowledged, not applied yet (`app.intake.apply_pending`)
    PROCESSED = "processed"
    QUARANTINED = "quarantined"
    IGNORED = "ignored"


class OrderStatus:
    RECEIVED = "received"                  # stored, not routed yet
    AWAITING_PAYMENT = "awaiting_payment"  # DISPATCH_ON=paid and not paid yet
    TEST = "test"                          # a test order, routed to nobody
    ROUTED = "routed"                      # every shippable line has a purchase order
    NEEDS_ATTENTION = "needs_attention"    # some line has no supplier (needs a mapping)
    PARTIALLY_SHIPPED = "partially_shipped"  # suppliers shipped some of the lines
    SHIPPED = "shipped"                    # every supplier line shipped in full
    CANCELLED = "cancelled"


class LineRouting:
    PENDING = "pending"                # not routed yet (order unpaid, test, just received)
    ROUTED = "routed"
    NEEDS_MAPPING = "needs_mapping"
    NOT_SHIPPED = "not_shipped"        # gift cards, digital goods: no supplier ships them


class PoStatus:
    PENDING = "pending"        # rendered and valid, waiting to be sent
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"  # sent, and the supplier confirmed it (maybe with changes)
    REJECTED = "rejected"      # sent, and the supplier refused it
    FAILED = "failed"          # the document failed validation, or its upload went dead
    WITHDRAWN = "withdrawn"    # cancelled before it was sent
    # On the supplier's server, whatever the supplier said about it since.
    DELIVERED = (SENT, ACKNOWLEDGED, REJECTED)


class JobStatus:
    PENDING = "pending"        # waiting for `next_attempt_at`
    RUNNING = "running"        # claimed by a dispatcher until `lease_until`
    DONE = "done"
    DEAD = "dead"              # gave up: a permanent error, or retried for too long
    CANCELLED = "cancelled"    # nothing left to do (the purchase order was withdrawn)


class JobKind:
    SEND_PO = "send_po"
    PUSH_FULFILLMENT = "push_fulfillment"
    PUSH_INVENTORY = "push_inventory"
    SYNC_STOCK = "sync_stock"
    SYNC_ORDERS = "sync_orders"


class WebhookEvent(Base):
    """One delivery from a channel, kept verbatim: the evidence, and what `replay` re-runs."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("channel", "delivery_id", name="uq_webhook_events_channel_delivery"),
        Index("ix_webhook_events_status_received", "status", "received_at"),
        # Only applied deliveries have an order: a webhook's INSERT leaves this index alone.
        Index("ix_webhook_events_order_id", "order_id",
              sqlite_where=text("order_id IS NOT NULL"),
              postgresql_where=text("order_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str | None] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(255))
    api_version: Mapped[str | None] = mapped_column(String(32))
    triggered_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(String(255))
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL")
    )
    replays: Mapped[int] = mapped_column(Integer, default=0)


class Order(Base):
    """An order as the channel last described it (never an older description)."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("channel", "account", "external_id", name="uq_orders_channel_external"),
        Index("ix_orders_placed_at_id", "placed_at", "id"),
        Index("ix_orders_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=OrderStatus.RECEIVED)
    financial_status: Mapped[str | None] = mapped_column(String(32))
    fulfillment_status: Mapped[str | None] = mapped_column(String(32))
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(64))
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_price: Mapped[Decimal | None]
    total_discounts: Mapped[Decimal | None]
    total_shipping: Mapped[Decimal | None]
    total_tax: Mapped[Decimal | None]
    total_price: Mapped[Decimal]
    customer_email: Mapped[str | None] = mapped_column(String(255))
    customer_name: Mapped[str | None] = mapped_column(String(255))
    customer_phone: Mapped[str | None] = mapped_column(String(64))
    shipping_address: Mapped[dict[str, Any] | None]
    note: Mapped[str | None] = mapped_column(Text)
    placed_at: Mapped[datetime]
    source_updated_at: Mapped[datetime]
    source_triggered_at: Mapped[datetime | None]  # the delivery's trigger time, for ties
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.position", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    """One line of an order; `quantity` is what is still to be shipped after edits."""

    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "external_id", name="uq_order_lines_order_external"),
        Index("ix_order_lines_sku", "sku"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(512))
    variant_title: Mapped[str | None] = mapped_column(String(255))
    vendor: Mapped[str | None] = mapped_column(String(255))
    product_id: Mapped[str | None] = mapped_column(String(64))
    variant_id: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal]
    total_discount: Mapped[Decimal]
    requires_shipping: Mapped[bool] = mapped_column(Boolean, default=True)
    gift_card: Mapped[bool] = mapped_column(Boolean, default=False)
    shipped_quantity: Mapped[int] = mapped_column(Integer, default=0)
    routing: Mapped[str] = mapped_column(String(16), default=LineRouting.PENDING)
    routing_reason: Mapped[str | None] = mapped_column(String(512))
    supplier: Mapped[str | None] = mapped_column(String(64))
    supplier_sku: Mapped[str | None] = mapped_column(String(255))
    unit_cost: Mapped[Decimal | None]

    order: Mapped[Order] = relationship(back_populates="lines")


class SkuMapEntry(Base):
    """Which supplier carries a SKU, under which part number, at what cost and priority."""

    __tablename__ = "sku_map"
    __table_args__ = (UniqueConstraint("sku", "supplier", name="uq_sku_map_sku_supplier"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    sku: Mapped[str] = mapped_column(String(255))
    supplier: Mapped[str] = mapped_column(String(64))
    supplier_sku: Mapped[str | None] = mapped_column(String(255))
    cost: Mapped[Decimal | None]
    priority: Mapped[int] = mapped_column(Integer, default=100)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PurchaseOrder(Base):
    """One version of the purchase order for one (order, supplier): the document as sent."""

    __tablename__ = "purchase_orders"
    __table_args__ = (
        UniqueConstraint("order_id", "supplier", "version", name="uq_purchase_orders_version"),
        Index("ix_purchase_orders_status", "status", "created_at"),
        Index("ix_purchase_orders_supplier", "supplier", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    supplier: Mapped[str] = mapped_column(String(64))
    po_number: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(8))       # new | change | cancel
    status: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    payload_id: Mapped[str] = mapped_column(String(255))
    content_key: Mapped[str] = mapped_column(String(64))  # what the lines say, to spot changes
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    document: Mapped[bytes | None] = mapped_column(LargeBinary)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    ack_status: Mapped[str | None] = mapped_column(String(16))   # accepted | changed | rejected
    ack_reference: Mapped[str | None] = mapped_column(String(255))  # the supplier's number
    ack_note: Mapped[str | None] = mapped_column(Text)
    ack_overdue_alerted_at: Mapped[datetime | None]


class OutboxJob(Base):
    """Work to do after a commit (upload a purchase order, ...), written in the same
    transaction as what caused it, claimed by dispatchers with a lease."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_target", "target"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64))    # e.g. the purchase order's id
    lane: Mapped[str] = mapped_column(String(64))      # e.g. the supplier: one connection each
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    first_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]                # kind-specific, e.g. a resend's file name
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class InboundFile(Base):
    """A file a supplier left for us (an acknowledgement, later shipment notices and stock
    feeds), kept as received and recorded by name and SHA-256 so it is applied once."""

    __tablename__ = "inbound_files"
    __table_args__ = (
        UniqueConstraint("supplier", "kind", "name", "sha256", name="uq_inbound_files_seen"),
        Index("ix_inbound_files_status", "status", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    supplier: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))       # ack (shipment, stock later)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))     # applied | quarantined
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Shipment(Base):
    """What a supplier's notice said was shipped for one purchase order, as applied."""

    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_order", "order_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    purchase_order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("purchase_orders.id", ondelete="CASCADE"))
    supplier: Mapped[str] = mapped_column(String(64))
    inbound_file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("inbound_files.id", ondelete="SET NULL"))
    supplier_shipment_id: Mapped[str | None] = mapped_column(String(255))
    carrier: Mapped[str | None] = mapped_column(String(255))
    tracking_number: Mapped[str | None] = mapped_column(String(255))
    tracking_url: Mapped[str | None] = mapped_column(String(2048))
    shipped_at: Mapped[datetime | None]
    # [{"order_line_id", "external_id", "line_number", "sku", "quantity"}]
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    excess: Mapped[str | None] = mapped_column(Text)   # what the notice said beyond the order
    push_status: Mapped[str] = mapped_column(String(16))  # queued | pushed | not_configured | dead
    pushed_at: Mapped[datetime | None]
    channel_reference: Mapped[str | None] = mapped_column(String(512))  # e.g. fulfillment ids
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncRun(Base):
    """One reconcile pass over a channel's orders (`orders sync`)."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_channel_started", "channel", "started_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))     # running | ok | failed
    since: Mapped[datetime]
    until: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)     # orders new to OrderHub
    updated: Mapped[int] = mapped_column(Integer, default=0)     # newer than what we had
    unchanged: Mapped[int] = mapped_column(Integer, default=0)   # already known (duplicate/stale)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class StockLevel(Base):
    """What one supplier's last trusted feed says it has of a SKU (all warehouses summed)."""

    __tablename__ = "stock_levels"
    __table_args__ = (UniqueConstraint("supplier", "sku", name="uq_stock_levels_supplier_sku"),
                      Index("ix_stock_levels_sku", "sku"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    supplier: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime]                      # the feed's time (as_of, else file mtime)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StockFeed(Base):
    """The state of one supplier's stock feed: trusted, held for an operator, or stale."""

    __tablename__ = "stock_feeds"

    supplier: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))      # ok | held | stale | failed
    reason: Mapped[str | None] = mapped_column(Text)
    feed_at: Mapped[datetime | None]                     # the feed's own time
    read_at: Mapped[datetime | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    skus: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    bad_rows: Mapped[int] = mapped_column(Integer, default=0)
    held_content: Mapped[bytes | None] = mapped_column(LargeBinary)  # the feed awaiting --accept


class ChannelListing(Base):
    """How a SKU is known on a channel, the last quantity pushed there, and its overrides."""

    __tablename__ = "channel_listings"
    __table_args__ = (UniqueConstraint("channel", "sku", name="uq_channel_listings_channel_sku"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(32))
    sku: Mapped[str] = mapped_column(String(255))
    refs: Mapped[dict[str, Any] | None]                  # e.g. inventory item and location ids
    last_pushed: Mapped[int | None] = mapped_column(Integer)
    last_pushed_at: Mapped[datetime | None]
    buffer: Mapped[int | None] = mapped_column(Integer)  # per-SKU overrides of the rule
    percent: Mapped[int | None] = mapped_column(Integer)
    max_quantity: Mapped[int | None] = mapped_column(Integer)
    manual_quantity: Mapped[int | None] = mapped_column(Integer)   # an operator's fixed value
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InventoryLog(Base):
    """Every quantity change pushed (or overridden) for a SKU on a channel, and why."""

    __tablename__ = "inventory_log"
    __table_args__ = (Index("ix_inventory_log_sku_at", "sku", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    sku: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(32))
    before: Mapped[int | None] = mapped_column(Integer)
    after: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(255))
    run: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
