"""Language versions: a story (cluster) may be another language's version of a
story, one group of versions under the group's first story.

No table of its own: the relation is two columns of story_clusters.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("story_clusters") as batch:
        # Not a foreign key, like first_article_id: a group's first story is
        # never deleted on its own, and the link is re-made by `deportwatch stories`.
        batch.add_column(sa.Column("language_group_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("language_score", sa.Float(), nullable=True))
        batch.create_index("ix_story_clusters_language_group_id", ["language_group_id"])


def downgrade() -> None:
    with op.batch_alter_table("story_clusters") as batch:
        batch.drop_index("ix_story_clusters_language_group_id")
        batch.drop_column("language_score")
        batch.drop_column("language_group_id")
