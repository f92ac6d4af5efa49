"""public finder reports ("alert the office" presses, for rate limits)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('public_report',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tag_key', sa.String(length=64), nullable=False),
    sa.Column('addr_key', sa.String(length=64), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('public_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_public_report_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_public_report_tag_key'), ['tag_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_public_report_addr_key'), ['addr_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('public_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_public_report_addr_key'))
        batch_op.drop_index(batch_op.f('ix_public_report_tag_key'))
        batch_op.drop_index(batch_op.f('ix_public_report_at'))

    op.drop_table('public_report')
