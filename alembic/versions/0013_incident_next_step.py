"""incident.next_step_at: the worker's escalation round skips incidents with nothing due

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("next_step_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_incident_next_step_at", ["next_step_at"])


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_index("ix_incident_next_step_at")
        batch.drop_column("next_step_at")
