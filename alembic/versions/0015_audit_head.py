"""audit_head: the chain's newest hash in one lockable row

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 00:30:00.000000

Appenders serialised on a PostgreSQL advisory lock, then read the newest entry's hash: two round
trips before the INSERT. Locking this one row with `SELECT ... FOR UPDATE` does both at once (a
waiter reads the row its predecessor committed), and the INSERT updates it in the same statement.
The row starts at the newest entry's hash (or the genesis hash on an empty chain).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64  # frozen copy of welfare.audit.service.GENESIS_HASH


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO audit_head (id, hash) SELECT 1, COALESCE("
        "(SELECT hash FROM audit_entry ORDER BY id DESC LIMIT 1), "
        f"'{GENESIS_HASH}')"
    )


def downgrade() -> None:
    op.drop_table("audit_head")
