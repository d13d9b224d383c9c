"""order trigger time for same-second ties

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:24:05.188055
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source_triggered_at", app.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("source_triggered_at")
