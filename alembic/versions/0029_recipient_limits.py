"""limits per recipient: the same text once per number, and an allowance per number

Revision ID: 0029
Revises: 0026
Create Date: 2026-12-03 15:00:00.000000

`recipient_text` remembers which outbox row last sent a text to a number and when, so the same
text goes to one number once within the window; `recipient_allowance` the times of the recent
messages outside an escalation per number (welfare/outbox/limits.py). Both key on HMACs of the
number (and text): no phone number or message text is stored. Outbox rows gain the status
'held' (the column is a plain string: no change there).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0029'
down_revision: str | None = '0026'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'recipient_text',
        sa.Column('phone_key', sa.String(length=64), nullable=False),
        sa.Column('text_key', sa.String(length=64), nullable=False),
        sa.Column('message_id', sa.Uuid(), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('phone_key', 'text_key'),
    )
    op.create_index('ix_recipient_text_message_id', 'recipient_text', ['message_id'])
    op.create_index('ix_recipient_text_sent_at', 'recipient_text', ['sent_at'])
    op.create_table(
        'recipient_allowance',
        sa.Column('phone_key', sa.String(length=64), nullable=False),
        sa.Column('recent', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('phone_key'),
    )
    op.create_index('ix_recipient_allowance_updated_at', 'recipient_allowance', ['updated_at'])


def downgrade() -> None:
    op.drop_index('ix_recipient_allowance_updated_at', table_name='recipient_allowance')
    op.drop_table('recipient_allowance')
    op.drop_index('ix_recipient_text_sent_at', table_name='recipient_text')
    op.drop_index('ix_recipient_text_message_id', table_name='recipient_text')
    op.drop_table('recipient_text')
    # Held rows say what the status did not have before: nothing went out, for good.
    op.execute("UPDATE outbox_message SET status = 'failed' WHERE status = 'held'")
