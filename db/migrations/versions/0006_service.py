"""The background service: alerts, their deliveries, announced health, checked runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column(
            "alert_id",
            sa.Integer(),
            sa.ForeignKey("alerts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("target", sa.String(32), primary_key=True),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("health_state", sa.String(16), nullable=True))
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(sa.Column("alerts_checked_at", UTCDateTime(), nullable=True))
    # Runs from before alerts existed are history: nothing in them is announced.
    op.execute("UPDATE crawl_runs SET alerts_checked_at = COALESCE(finished_at, started_at)")


def downgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("alerts_checked_at")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("health_state")
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
