"""guard lookup speed: PostgreSQL's lookup GIN indexes without a pending list

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 21:30:00.000000

A GIN index with `fastupdate` (PostgreSQL's default) queues new entries in an unsorted pending
list of up to `gin_pending_list_limit` (4 MB) until a vacuum or an insert flushes it, and every
search reads the whole list: at 100,000 residents a lookup read some 360 pending pages per query
and a typo-name lookup took 40 ms in the index alone. Registrations are rare and lookups are an
emergency, so the lookup's GIN indexes (0009) insert straight into the tree instead, and the
entries already pending are moved there now. SQLite has nothing to change.
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the GIN indexes 0009 made (welfare.lookup.index may change later).
GIN_INDEXES = (
    "ix_lookup_token_trgm",
    "ix_lookup_entry_names_words",
    "ix_lookup_entry_description_words",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in GIN_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        # `regclass` resolves through the search path, like the ALTER above.
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in GIN_INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
