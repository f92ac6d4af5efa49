"""visits, schedules, calendar tokens, resident phone

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 17:45:07.251540
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('job_mark',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('calendar_token',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('visit_schedule',
    sa.Column('kind', sa.Enum('home_visit', 'phone_checkin', 'automated_call', name='visitkind', native_enum=False, length=20), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=False),
    sa.Column('window_start', sa.Time(), nullable=False),
    sa.Column('window_end', sa.Time(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('resident_id', sa.Uuid(), nullable=False),
    sa.Column('assignee_user_id', sa.Uuid(), nullable=True),
    sa.Column('generated_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignee_user_id'], ['user_account.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('visit_schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_schedule_assignee_user_id'), ['assignee_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visit_schedule_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visit_schedule_site_id'), ['site_id'], unique=False)

    op.create_table('visit',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('schedule_id', sa.Uuid(), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('resident_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('home_visit', 'phone_checkin', 'automated_call', name='visitkind', native_enum=False, length=20), nullable=False),
    sa.Column('assignee_user_id', sa.Uuid(), nullable=True),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('scheduled', 'reminded', 'overdue', 'missed', 'completed', name='visitstatus', native_enum=False, length=20), nullable=False),
    sa.Column('outcome', sa.Enum('well', 'concern', 'not_home', 'refused', 'hospitalised', name='visitoutcome', native_enum=False, length=20), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('follow_up', sa.Boolean(), nullable=False),
    sa.Column('recorded_by', sa.Uuid(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('overdue_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('missed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('call_attempts', sa.Integer(), nullable=False),
    sa.Column('last_call_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('incident_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['schedule_id'], ['visit_schedule.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('schedule_id', 'window_start')
    )
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_assignee_user_id'), ['assignee_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visit_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index('ix_visit_site_window', ['site_id', 'window_start'], unique=False)
        batch_op.create_index('ix_visit_status_window', ['status', 'window_start'], unique=False)

    with op.batch_alter_table('resident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=32), nullable=True))



def downgrade() -> None:
    # Not a batch (copy, drop, rename) on SQLite: dropping the resident table while other
    # tables hold rows that point at it fails there. SQLite 3.35+ drops a plain column itself.
    op.drop_column('resident', 'phone')

    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_index('ix_visit_status_window')
        batch_op.drop_index('ix_visit_site_window')
        batch_op.drop_index(batch_op.f('ix_visit_resident_id'))
        batch_op.drop_index(batch_op.f('ix_visit_assignee_user_id'))

    op.drop_table('visit')
    with op.batch_alter_table('visit_schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_schedule_site_id'))
        batch_op.drop_index(batch_op.f('ix_visit_schedule_resident_id'))
        batch_op.drop_index(batch_op.f('ix_visit_schedule_assignee_user_id'))

    op.drop_table('visit_schedule')
    op.drop_table('calendar_token')
    op.drop_table('job_mark')
