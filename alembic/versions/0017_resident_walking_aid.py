"""resident: walking aid, and whether the photo is an illustration

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 14:45:00.000000

A walking aid (a stick, a frame, a wheelchair) is what a guard sees first; it gets its own
field on the card and in the lookup. `photo_illustration` marks a drawn portrait (the demo's),
which the pages then call an illustration, not a photograph.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('resident') as batch:
        batch.add_column(sa.Column('walking_aid', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('photo_illustration', sa.Boolean(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of the resident table would
    # have to drop the table its lookup triggers hang on.
    op.drop_column('resident', 'photo_illustration')
    op.drop_column('resident', 'walking_aid')
