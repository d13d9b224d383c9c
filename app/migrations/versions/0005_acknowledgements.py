"""acknowledgements: purchase-order ack fields, inbound files

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:06:47.796846
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("inbound_files",
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("supplier", sa.String(length=64), nullable=False),
    sa.Column("kind", sa.String(length=16), nullable=False),
    sa.Column("name", sa.String(length=255), nullable=False),
    sa.Column("sha256", sa.String(length=64), nullable=False),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("content", sa.LargeBinary(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("received_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_files")),
    sa.UniqueConstraint("supplier", "kind", "name", "sha256", name="uq_inbound_files_seen")
    )
    with op.batch_alter_table("inbound_files", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_files_status", ["status", "received_at"], unique=False)

    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", app.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("ack_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ack_reference", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("ack_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ack_overdue_alerted_at",
                                      app.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.drop_column("ack_overdue_alerted_at")
        batch_op.drop_column("ack_note")
        batch_op.drop_column("ack_reference")
        batch_op.drop_column("ack_status")
        batch_op.drop_column("acknowledged_at")

    with op.batch_alter_table("inbound_files", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_files_status")

    op.drop_table("inbound_files")
