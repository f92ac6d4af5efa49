"""answer links: the short link in each alert SMS to a family contact (/r/<token>)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 18:50:00.000000

One row per (incident, contact): the token's SHA-256 only (the token itself is derived when the
SMS is rendered, see welfare/incidents/answer_links.py), when it was first opened, and the
contact's answer.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('answer_link',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('contact_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answer', sa.Enum('coming', 'cannot', name='answer', native_enum=False, length=10), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident_id', 'contact_id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('answer_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_answer_link_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_answer_link_incident_id'), ['incident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('answer_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_answer_link_incident_id'))
        batch_op.drop_index(batch_op.f('ix_answer_link_contact_id'))

    op.drop_table('answer_link')
