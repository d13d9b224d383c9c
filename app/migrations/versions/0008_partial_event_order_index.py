"""webhook_events.order_id: a partial index, of applied deliveries only

A webhook's INSERT has no order yet; with `WHERE order_id IS NOT NULL` it no longer writes a
page of this index (one of eight on SQLite) in every webhook's transaction.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPLIED = sa.text("order_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_webhook_events_order_id", table_name="webhook_events")
    op.create_index("ix_webhook_events_order_id", "webhook_events", ["order_id"], unique=False,
                    sqlite_where=APPLIED, postgresql_where=APPLIED)


def downgrade() -> None:
    op.drop_index("ix_webhook_events_order_id", table_name="webhook_events")
    op.create_index("ix_webhook_events_order_id", "webhook_events", ["order_id"], unique=False)
