"""PostgreSQL search ranks on a small vector of the title and the lead.

``ts_rank`` over ``search_vector`` reads the whole vector of every match, and
that vector (a few KB per article) lives out of line in the TOAST table, so a
broad question over a million articles fetched tens of thousands of them. The
lead vector (title as weight A, the first characters of the body as B, about
1 KB) is kept in the row itself (storage MAIN), read with the match at no extra
fetch. ``db.search`` ranks every match on it, then ranks the best candidates on
the full vector. Matching is unchanged: ``search_vector`` and its GIN index.

SQLite is untouched: FTS5's bm25 reads its own index, not the documents.

Adding a generated column rewrites ``articles`` once (a few minutes per
million articles).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A news lead: the first paragraph or two. Longer leads rank closer to the full
# vector but make every row, and so every match's read, larger.
LEAD_CHARACTERS = 600
PG_LEAD_VECTOR = (
    "setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
    f"setweight(to_tsvector('simple', left(coalesce(text, ''), {LEAD_CHARACTERS})), 'B')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        f"ALTER TABLE articles ADD COLUMN lead_vector tsvector "
        f"GENERATED ALWAYS AS ({PG_LEAD_VECTOR}) STORED"
    )
    # MAIN: compressed if need be, but kept in the row rather than in TOAST.
    op.execute("ALTER TABLE articles ALTER COLUMN lead_vector SET STORAGE MAIN")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("ALTER TABLE articles DROP COLUMN lead_vector")
