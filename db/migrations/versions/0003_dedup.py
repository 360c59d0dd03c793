"""Deduplication: story clusters, article versions, MinHash signatures and LSH bands.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "story_clusters",
        sa.Column("id", sa.Integer(), primary_key=True),
        # Not a foreign key: the first member is set after the cluster exists.
        sa.Column("first_article_id", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("cluster_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("minhash", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("similarity", sa.Float(), nullable=True))
        batch.create_foreign_key(
            "fk_articles_cluster", "story_clusters", ["cluster_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_articles_cluster_id", ["cluster_id"])
        batch.create_index("ix_articles_source_guid", ["source_id", "feed_guid"])
    op.create_table(
        "article_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "article_id",
            sa.Integer(),
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("seen_from", UTCDateTime(), nullable=False),
        sa.Column("seen_until", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_article_versions_article_id", "article_versions", ["article_id"])
    op.create_table(
        "lsh_bands",
        sa.Column("band_key", sa.BigInteger(), nullable=False),
        sa.Column(
            "article_id",
            sa.Integer(),
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("band_key", "article_id"),
    )
    op.create_index("ix_lsh_bands_article_id", "lsh_bands", ["article_id"])
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(
            sa.Column("articles_duplicate", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("articles_duplicate")
    op.drop_table("lsh_bands")
    op.drop_table("article_versions")
    with op.batch_alter_table("articles") as batch:
        batch.drop_index("ix_articles_source_guid")
        batch.drop_index("ix_articles_cluster_id")
        batch.drop_constraint("fk_articles_cluster", type_="foreignkey")
        for column in ("similarity", "duplicate_of", "minhash", "cluster_id"):
            batch.drop_column(column)
    op.drop_table("story_clusters")
