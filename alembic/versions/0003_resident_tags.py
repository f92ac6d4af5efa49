"""resident tags

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 15:46:23.711731
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('resident_tag',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('resident_id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_by', sa.Uuid(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('resident_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resident_tag_resident_id'), ['resident_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('resident_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resident_tag_resident_id'))

    op.drop_table('resident_tag')
