"""outbox: jobs to run after commit (send a purchase order, ...)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 16:50:32.428840
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("outbox",
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("kind", sa.String(length=32), nullable=False),
    sa.Column("target", sa.String(length=64), nullable=False),
    sa.Column("lane", sa.String(length=64), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column("first_attempt_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("lease_owner", sa.String(length=128), nullable=True),
    sa.Column("lease_until", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("data", sa.JSON(), nullable=True),
    sa.Column("created_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column("updated_at", app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column("finished_at", app.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox"))
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_outbox_target", ["target"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_target")
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
