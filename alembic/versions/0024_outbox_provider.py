"""outbox rows name the provider that carried them, for routes per destination and fail-over

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 07:00:00.000000

A message that one provider fails for good goes once to the next provider of its route
(notifications/routes.py); the row says which provider took it, so no provider gets it twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_column('provider')
