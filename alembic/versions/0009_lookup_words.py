"""guard lookup: word vocabulary and PostgreSQL word indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 18:00:00.000000

`lookup_token` holds every distinct word of the indexed names and descriptions with a reference
count. On PostgreSQL the lookup matches a query word against this short vocabulary (GIN trigram
index on `token`) and then finds the entries carrying the words found through GIN indexes over
each entry's words (`string_to_array(translate(col, '|', ' '), ' ')`): two small index reads
instead of a trigram scan of the long fields, whose common trigrams (padding, separators) made
every text query walk most of the table. The 0004 trigram indexes over the long fields go.
The vocabulary is backfilled from lookup_entry with a frozen copy of the splitting rule.
"""

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trgm_schema() -> str:
    return (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'pg_trgm'"
            )
        )
        .scalar_one()
    )


def upgrade() -> None:
    op.create_table(
        "lookup_token",
        sa.Column("field", sa.String(length=12), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("field", "token"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema = _trgm_schema()
        op.execute(
            f"CREATE INDEX ix_lookup_token_trgm ON lookup_token "
            f'USING gin (token "{schema}".gin_trgm_ops)'
        )
        for column in ("names", "description"):
            op.execute(
                f"CREATE INDEX ix_lookup_entry_{column}_words ON lookup_entry "
                f"USING gin (string_to_array(translate({column}, '|', ' '), ' '))"
            )
            op.execute(f"DROP INDEX IF EXISTS ix_lookup_entry_{column}_trgm")
    _backfill()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        schema = _trgm_schema()
        for column in ("names", "description"):
            op.execute(f"DROP INDEX IF EXISTS ix_lookup_entry_{column}_words")
            op.execute(
                f"CREATE INDEX ix_lookup_entry_{column}_trgm ON lookup_entry "
                f'USING gin ({column} "{schema}".gin_trgm_ops)'
            )
        op.execute("DROP INDEX IF EXISTS ix_lookup_token_trgm")
    op.drop_table("lookup_token")


def _backfill() -> None:
    bind = op.get_bind()
    entry = sa.table(
        "lookup_entry", sa.column("names", sa.Text()), sa.column("description", sa.Text())
    )
    token = sa.table(
        "lookup_token",
        sa.column("field", sa.String()),
        sa.column("token", sa.Text()),
        sa.column("refs", sa.Integer()),
    )
    counts: Counter[tuple[str, str]] = Counter()
    for names, description in bind.execute(sa.select(entry.c.names, entry.c.description)):
        counts.update({("names", t) for t in names.replace("|", " ").split()})
        counts.update({("description", t) for t in description.replace("|", " ").split()})
    rows = [{"field": f, "token": t, "refs": n} for (f, t), n in sorted(counts.items())]
    for start in range(0, len(rows), 5000):
        bind.execute(token.insert(), rows[start : start + 5000])
