"""outbox error codes up to 64 characters: Alibaba Cloud's are words, not numbers

Revision ID: 0027
Revises: 0025
Create Date: 2026-12-03 07:20:00.000000

Twilio's error codes are five digits; Alibaba Cloud's are dotted words such as
isv.BUSINESS_LIMIT_CONTROL (26 characters) or InvalidAccessKeyId.NotFound (27), which a
20-character column refused on PostgreSQL (the failure could then not be recorded at all).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0027"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.alter_column(
            "error_code",
            existing_type=sa.String(length=20),
            type_=sa.String(length=64),
            existing_nullable=True,
        )


def downgrade() -> None:
    op.execute(
        "UPDATE outbox_message SET error_code = substr(error_code, 1, 20)"
        " WHERE length(error_code) > 20"
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.alter_column(
            "error_code",
            existing_type=sa.String(length=64),
            type_=sa.String(length=20),
            existing_nullable=True,
        )
