"""two-factor sign-in: TOTP seeds, recovery codes, pending sign-ins, per-site requirement

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 19:00:00.000000

Existing sites require a second factor of staff, managers and admins from now on, as new sites
do, except the demo's own site: `welfare demo` reuses its database, and its users (who have no
authenticator app) must still be able to sign in. Guards are not required by default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEMO_SITE_NAME = 'Harbour View Gardens (demo)'


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN: a batch copy of `site` or `user_account` on SQLite would
    # drop a table that many others reference.
    op.add_column('site', sa.Column(
        'require_second_factor_staff', sa.Boolean(), server_default=sa.true(), nullable=False
    ))
    op.add_column('site', sa.Column(
        'require_second_factor_guards', sa.Boolean(), server_default=sa.false(), nullable=False
    ))
    site = sa.table('site', sa.column('name', sa.String()),
                    sa.column('require_second_factor_staff', sa.Boolean()))
    op.execute(
        site.update().where(site.c.name == DEMO_SITE_NAME)
        .values(require_second_factor_staff=False)
    )
    op.add_column('user_account', sa.Column('totp_secret_sealed', sa.String(length=512), nullable=True))
    op.add_column('user_account', sa.Column('totp_enabled_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('user_account', sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.add_column('auth_session', sa.Column('second_factor', sa.String(length=20), nullable=True))
    op.create_table('recovery_code',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_recovery_code_user_id'), 'recovery_code', ['user_id'], unique=False)
    op.create_table('sign_in_challenge',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sign_in_challenge_user_id'), 'sign_in_challenge', ['user_id'], unique=False)
    op.create_index(op.f('ix_sign_in_challenge_expires_at'), 'sign_in_challenge', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sign_in_challenge_expires_at'), table_name='sign_in_challenge')
    op.drop_index(op.f('ix_sign_in_challenge_user_id'), table_name='sign_in_challenge')
    op.drop_table('sign_in_challenge')
    op.drop_index(op.f('ix_recovery_code_user_id'), table_name='recovery_code')
    op.drop_table('recovery_code')
    op.drop_column('auth_session', 'second_factor')
    op.drop_column('user_account', 'totp_last_step')
    op.drop_column('user_account', 'totp_enabled_at')
    op.drop_column('user_account', 'totp_secret_sealed')
    op.drop_column('site', 'require_second_factor_guards')
    op.drop_column('site', 'require_second_factor_staff')
