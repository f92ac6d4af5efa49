"""incident photos (one photo a guard took of the person found; files under the media dir)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('incident') as batch:
        batch.add_column(sa.Column('photo_file', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('thumbnail_file', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('photo_added_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incident') as batch:
        batch.drop_column('photo_added_at')
        batch.drop_column('thumbnail_file')
        batch.drop_column('photo_file')
