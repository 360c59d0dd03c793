"""Evidence: where each article and each of its versions was archived as fetched
(WARC file, offset, length, payload digest, capture time), and what re-asking
the source last said of it (alive, changed, removed, and when).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _capture_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("capture_file", sa.Text(), nullable=True),
        sa.Column("capture_offset", sa.BigInteger(), nullable=True),
        sa.Column("capture_length", sa.Integer(), nullable=True),
        sa.Column("capture_digest", sa.String(80), nullable=True),
        sa.Column("captured_at", UTCDateTime(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        for column in _capture_columns():
            batch.add_column(column)
        batch.add_column(sa.Column("source_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("verified_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("removed_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("article_versions") as batch:
        for column in _capture_columns():
            batch.add_column(column)


def downgrade() -> None:
    names = ["capture_file", "capture_offset", "capture_length", "capture_digest", "captured_at"]
    with op.batch_alter_table("article_versions") as batch:
        for name in names:
            batch.drop_column(name)
    with op.batch_alter_table("articles") as batch:
        for name in [*names, "source_state", "verified_at", "removed_at"]:
            batch.drop_column(name)
