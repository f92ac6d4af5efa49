"""the passer-by who finds him: finder links, the site's voice line and hours, care tips

Revision ID: 0024_finder
Revises: 0024
Create Date: 2026-12-03 06:40:00.000000

A member of the public who reports a resident found gets a status page behind an unguessable
token (`public_report.token_hash`, only the SHA-256 of it). `incident.public_finder` marks an
incident a finder reported: guards on duty get it as an alert, and the finder's coordinates on it
are erased when it closes. A site may have its own voice number (the finder calls it and is put
through without either side seeing the other's number) and office hours (during them the call goes
to the office). `resident.public_care_tips`: two or three lines a stranger may read, under the
`public_care_tips` consent scope.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0024_finder'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE throughout: a batch copy of the resident table would drop its lookup
    # triggers, and the others need nothing more than new nullable columns.
    op.add_column('public_report', sa.Column('token_hash', sa.String(length=64), nullable=True))
    op.create_index(
        'ix_public_report_token_hash', 'public_report', ['token_hash'], unique=True
    )
    op.add_column('incident', sa.Column('public_finder', sa.Boolean(), nullable=True))
    op.add_column('site', sa.Column('voice_number', sa.String(length=32), nullable=True))
    op.add_column('site', sa.Column('office_opens', sa.Time(), nullable=True))
    op.add_column('site', sa.Column('office_closes', sa.Time(), nullable=True))
    op.add_column('resident', sa.Column('public_care_tips', sa.String(length=300), nullable=True))


def downgrade() -> None:
    op.drop_column('resident', 'public_care_tips')
    op.drop_column('site', 'office_closes')
    op.drop_column('site', 'office_opens')
    op.drop_column('site', 'voice_number')
    op.drop_column('incident', 'public_finder')
    op.drop_index('ix_public_report_token_hash', table_name='public_report')
    op.drop_column('public_report', 'token_hash')
