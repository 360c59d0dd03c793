"""Every source kind: counter readings, per-article details, run counts, feed update period.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "counter_readings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "source_id",
            sa.Integer(),
            sa.ForeignKey("sources.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.UniqueConstraint("source_id", "metric", "as_of", "value", name="uq_counter_readings"),
    )
    op.create_index("ix_counter_readings_metric_as_of", "counter_readings", ["metric", "as_of"])
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(
            sa.Column("articles_undated", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("readings_new", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("fetch_state") as batch:
        batch.add_column(sa.Column("update_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fetch_state") as batch:
        batch.drop_column("update_seconds")
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("readings_new")
        batch.drop_column("articles_undated")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("details")
    op.drop_index("ix_counter_readings_metric_as_of", table_name="counter_readings")
    op.drop_table("counter_readings")
