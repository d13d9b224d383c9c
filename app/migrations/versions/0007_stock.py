"""stock: levels, feeds, channel listings, inventory log

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 17:35:29.273319
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("channel_listings",
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("channel", sa.String(length=32), nullable=False),
    sa.Column("sku", sa.String(length=255), nullable=False),
    sa.Column("refs", sa.JSON(), nullable=True),
    sa.Column("last_pushed", sa.Integer(), nullable=True),
    sa.Column("last_pushed_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("buffer", sa.Integer(), nullable=True),
    sa.Column("percent", sa.Integer(), nullable=True),
    sa.Column("max_quantity", sa.Integer(), nullable=True),
    sa.Column("manual_quantity", sa.Integer(), nullable=True),
    sa.Column("updated_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_listings")),
    sa.UniqueConstraint("channel", "sku", name="uq_channel_listings_channel_sku")
    )
    op.create_table("inventory_log",
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("sku", sa.String(length=255), nullable=False),
    sa.Column("channel", sa.String(length=32), nullable=False),
    sa.Column("before", sa.Integer(), nullable=True),
    sa.Column("after", sa.Integer(), nullable=True),
    sa.Column("reason", sa.String(length=255), nullable=False),
    sa.Column("run", sa.String(length=64), nullable=True),
    sa.Column("at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_log"))
    )
    with op.batch_alter_table("inventory_log", schema=None) as batch_op:
        batch_op.create_index("ix_inventory_log_sku_at", ["sku", "at"], unique=False)

    op.create_table("stock_feeds",
    sa.Column("supplier", sa.String(length=64), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("feed_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("read_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("sha256", sa.String(length=64), nullable=True),
    sa.Column("skus", sa.Integer(), nullable=False),
    sa.Column("total", sa.Integer(), nullable=False),
    sa.Column("bad_rows", sa.Integer(), nullable=False),
    sa.Column("held_content", sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint("supplier", name=op.f("pk_stock_feeds"))
    )
    op.create_table("stock_levels",
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("supplier", sa.String(length=64), nullable=False),
    sa.Column("sku", sa.String(length=255), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("as_of", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column("updated_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_levels")),
    sa.UniqueConstraint("supplier", "sku", name="uq_stock_levels_supplier_sku")
    )
    with op.batch_alter_table("stock_levels", schema=None) as batch_op:
        batch_op.create_index("ix_stock_levels_sku", ["sku"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stock_levels", schema=None) as batch_op:
        batch_op.drop_index("ix_stock_levels_sku")

    op.drop_table("stock_levels")
    op.drop_table("stock_feeds")
    with op.batch_alter_table("inventory_log", schema=None) as batch_op:
        batch_op.drop_index("ix_inventory_log_sku_at")

    op.drop_table("inventory_log")
    op.drop_table("channel_listings")
