"""Flagging: per-article flag state and the matches behind it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(
            sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("flag_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("flag_categories", sa.Text(), nullable=True))
        batch.add_column(sa.Column("keywords_version", sa.String(32), nullable=True))
        batch.add_column(sa.Column("flagged_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_articles_flagged", ["flagged"])
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(
            sa.Column("articles_flagged", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "flag_matches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "article_id",
            sa.Integer(),
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("term", sa.Text(), nullable=False),
        sa.Column("field", sa.String(8), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
    )
    op.create_index("ix_flag_matches_article_id", "flag_matches", ["article_id"])


def downgrade() -> None:
    op.drop_table("flag_matches")
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("articles_flagged")
    with op.batch_alter_table("articles") as batch:
        batch.drop_index("ix_articles_flagged")
        for column in (
            "flagged_at",
            "keywords_version",
            "flag_categories",
            "flag_score",
            "flagged",
        ):
            batch.drop_column(column)
