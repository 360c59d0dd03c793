"""Which process runs a crawl (so a run left open by a killed crawl can be closed),
and when each article's page was last asked for (so re-checks can be spaced out).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("checked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("checked_at")
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("host")
        batch.drop_column("pid")
