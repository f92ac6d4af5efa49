"""contact verification: when a test SMS link or a test call's key 1 last proved a contact's
number, and the test SMS links (/v/<token>)

Revision ID: 0025
Revises: 0024_finder
Create Date: 2026-12-03 07:00:00.000000

`contact.verified_at` / `verified_via` (sms_link, keypress); `contact_test_link` keeps one row
per test SMS: the token's SHA-256 only (the token is derived when the SMS is rendered, see
welfare/residents/contact_checks.py), its expiry and when it was first used.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0025'
down_revision: str | None = '0024_finder'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                'verified_via',
                sa.Enum('sms_link', 'keypress', name='verifiedvia', native_enum=False, length=16),
                nullable=True,
            )
        )
    op.create_table('contact_test_link',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('contact_id', sa.Uuid(), nullable=False),
    sa.Column('request_key', sa.String(length=120), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_key'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('contact_test_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_test_link_contact_id'), ['contact_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contact_test_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_test_link_contact_id'))
    op.drop_table('contact_test_link')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_column('verified_via')
        batch_op.drop_column('verified_at')
