"""shipments and sync runs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 17:13:12.316764
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("sync_runs",
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("channel", sa.String(length=32), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("since", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column("until", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("started_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column("finished_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("fetched", sa.Integer(), nullable=False),
    sa.Column("created", sa.Integer(), nullable=False),
    sa.Column("updated", sa.Integer(), nullable=False),
    sa.Column("unchanged", sa.Integer(), nullable=False),
    sa.Column("quarantined", sa.Integer(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs"))
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index("ix_sync_runs_channel_started",
                              ["channel", "started_at"], unique=False)

    op.create_table("shipments",
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("order_id", sa.Uuid(), nullable=False),
    sa.Column("purchase_order_id", sa.Uuid(), nullable=False),
    sa.Column("supplier", sa.String(length=64), nullable=False),
    sa.Column("inbound_file_id", sa.Uuid(), nullable=True),
    sa.Column("supplier_shipment_id", sa.String(length=255), nullable=True),
    sa.Column("carrier", sa.String(length=255), nullable=True),
    sa.Column("tracking_number", sa.String(length=255), nullable=True),
    sa.Column("tracking_url", sa.String(length=2048), nullable=True),
    sa.Column("shipped_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("lines", sa.JSON(), nullable=False),
    sa.Column("excess", sa.Text(), nullable=True),
    sa.Column("push_status", sa.String(length=16), nullable=False),
    sa.Column("pushed_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("channel_reference", sa.String(length=512), nullable=True),
    sa.Column("created_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["inbound_file_id"], ["inbound_files.id"],
                            name=op.f("fk_shipments_inbound_file_id_inbound_files"),
                            ondelete="SET NULL"),
    sa.ForeignKeyConstraint(["order_id"], ["orders.id"],
                            name=op.f("fk_shipments_order_id_orders"),
                            ondelete="CASCADE"),
    sa.ForeignKeyConstraint(["purchase_order_id"], ["purchase_orders.id"],
                            name=op.f("fk_shipments_purchase_order_id_purchase_orders"),
                            ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments"))
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index("ix_shipments_order", ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index("ix_shipments_order")

    op.drop_table("shipments")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_channel_started")

    op.drop_table("sync_runs")
