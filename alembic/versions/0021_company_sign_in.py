"""company sign-in: identity providers, linked accounts, sign-ins under way, user e-mail

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 18:43:02.759421

OpenID Connect providers an admin configures for a set of sites (the client secret sealed),
the (provider, sub) links of users who signed in through one, the short-lived state of a
sign-in sent to a provider, and an optional, unique e-mail on each user, which a first company
sign-in matches.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('identity_provider',
    sa.Column('display_name', sa.String(length=80), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('enforces_two_factor', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('allowed_domains', sa.JSON(), nullable=False),
    sa.Column('client_secret_sealed', sa.String(length=4000), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('identity_provider_site',
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['identity_provider.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', 'site_id')
    )
    with op.batch_alter_table('identity_provider_site', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_provider_site_site_id'), ['site_id'], unique=False)

    op.create_table('oidc_login',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('code_verifier', sa.String(length=128), nullable=False),
    sa.Column('next_path', sa.String(length=2000), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['identity_provider.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('state_hash')
    )
    with op.batch_alter_table('oidc_login', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_login_expires_at'), ['expires_at'], unique=False)

    op.create_table('user_identity',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['provider_id'], ['identity_provider.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider_id', 'subject', name='uq_user_identity_subject')
    )
    with op.batch_alter_table('user_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_identity_user_id'), ['user_id'], unique=False)

    # Plain ALTER TABLE: a batch copy of user_account would have to drop the table that every
    # session, audit and visit row points at.
    op.add_column('user_account', sa.Column('email', sa.String(length=254), nullable=True))
    op.create_index('ix_user_account_email', 'user_account', ['email'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_user_account_email', table_name='user_account')
    op.drop_column('user_account', 'email')

    with op.batch_alter_table('user_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_identity_user_id'))

    op.drop_table('user_identity')
    with op.batch_alter_table('oidc_login', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_login_expires_at'))

    op.drop_table('oidc_login')
    with op.batch_alter_table('identity_provider_site', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_provider_site_site_id'))

    op.drop_table('identity_provider_site')
    op.drop_table('identity_provider')
