"""routing and purchase orders

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:43:15.775071
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sku_map",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("supplier_sku", sa.String(length=255), nullable=True),
        sa.Column("cost", app.types.Money(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("updated_at", app.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sku_map")),
        sa.UniqueConstraint("sku", "supplier", name="uq_sku_map_sku_supplier"),
    )
    op.create_table(
        "purchase_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("po_number", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("payload_id", sa.String(length=255), nullable=False),
        sa.Column("content_key", sa.String(length=64), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", app.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", app.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_purchase_orders_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_orders")),
        sa.UniqueConstraint("order_id", "supplier", "version", name="uq_purchase_orders_version"),
    )
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.create_index("ix_purchase_orders_status", ["status", "created_at"], unique=False)
        batch_op.create_index(
            "ix_purchase_orders_supplier", ["supplier", "created_at"], unique=False
        )

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("routing", sa.String(length=16), nullable=False, server_default="pending")
        )
        batch_op.add_column(sa.Column("routing_reason", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("supplier", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("supplier_sku", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("unit_cost", app.types.Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("unit_cost")
        batch_op.drop_column("supplier_sku")
        batch_op.drop_column("supplier")
        batch_op.drop_column("routing_reason")
        batch_op.drop_column("routing")

    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_orders_supplier")
        batch_op.drop_index("ix_purchase_orders_status")

    op.drop_table("purchase_orders")
    op.drop_table("sku_map")
