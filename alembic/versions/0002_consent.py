"""consent records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:12:21.854832
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('consent',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('resident_id', sa.Uuid(), nullable=False),
    sa.Column('given_by_kind', sa.Enum('resident', 'guardian', 'attorney', name='givenbykind', native_enum=False, length=20), nullable=False),
    sa.Column('given_by_name', sa.String(length=200), nullable=True),
    sa.Column('given_by_relationship', sa.String(length=100), nullable=True),
    sa.Column('evidence', sa.String(length=1000), nullable=True),
    sa.Column('method', sa.Enum('written', 'verbal', 'electronic', name='consentmethod', native_enum=False, length=20), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('recorded_by', sa.Uuid(), nullable=True),
    sa.Column('given_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('review_due', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_by', sa.Uuid(), nullable=True),
    sa.Column('withdrawal_reason', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_resident_id'), ['resident_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_resident_id'))

    op.drop_table('consent')
