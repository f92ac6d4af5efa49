"""shared devices and guards' quick-sign-in PINs

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 19:00:00.000000

Guards change shifts on one phone. After a full sign-in on that phone a guard may set a short
PIN bound to it (`device_pin`); the phone is known by a random token whose hash is
`shared_device.token_hash`. One PIN per guard per device (unique), revocable, locked after a few
wrong tries.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'shared_device',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.Uuid(), nullable=True),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(['created_by'], ['user_account.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_table(
        'device_pin',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('device_id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('pin_hash', sa.String(length=512), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['device_id'], ['shared_device.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('device_id', 'user_id', name='uq_device_pin_device_user'),
    )
    op.create_index('ix_device_pin_device_id', 'device_pin', ['device_id'])
    op.create_index('ix_device_pin_user_id', 'device_pin', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_device_pin_user_id', table_name='device_pin')
    op.drop_index('ix_device_pin_device_id', table_name='device_pin')
    op.drop_table('device_pin')
    op.drop_table('shared_device')
