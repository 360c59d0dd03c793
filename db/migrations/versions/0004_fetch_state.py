"""Cheap re-crawls: conditional-GET state per feed URL, feed metadata per article.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fetch_state",
        sa.Column("url", sa.Text(), primary_key=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("body_hash", sa.String(64), nullable=True),
        sa.Column("entry_urls", sa.Text(), nullable=True),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("feed_meta_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("etag", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_modified", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        for column in ("last_modified", "etag", "feed_meta_hash"):
            batch.drop_column(column)
    op.drop_table("fetch_state")
