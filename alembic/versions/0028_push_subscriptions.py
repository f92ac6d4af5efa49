"""web push: staff phones' push subscriptions and the service's VAPID key pair

Revision ID: 0026
Revises: 0027
Create Date: 2026-12-03 07:20:00.000000

A guard or manager who turns alerts on gets missing-resident alerts and "an incident needs you"
as a push instead of the SMS (docs/web-push.md). `push_subscription` is one row per phone (the
endpoint is unique); `vapid_key` holds the one key pair made at first start (row 1, the private
key sealed), so every process signs pushes with the same key. Outbox rows name the new channel
'push' (the kind column is a plain string: no change there).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0026'
down_revision: str | None = '0027'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'push_subscription',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('endpoint', sa.String(length=1000), nullable=False),
        sa.Column('p256dh', sa.String(length=100), nullable=False),
        sa.Column('auth', sa.String(length=40), nullable=False),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('endpoint'),
    )
    op.create_index(
        op.f('ix_push_subscription_user_id'), 'push_subscription', ['user_id'], unique=False
    )
    op.create_table(
        'vapid_key',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('private_key_sealed', sa.String(length=500), nullable=False),
        sa.Column('public_key', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbox_message WHERE kind = 'push'")
    op.drop_table('vapid_key')
    op.drop_index(op.f('ix_push_subscription_user_id'), table_name='push_subscription')
    op.drop_table('push_subscription')
