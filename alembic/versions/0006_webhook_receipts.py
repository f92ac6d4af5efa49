"""webhook receipts (idempotent Twilio callbacks)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_receipt',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('webhook_receipt', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_webhook_receipt_received_at'), ['received_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('webhook_receipt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_receipt_received_at'))

    op.drop_table('webhook_receipt')
