"""passkeys: WebAuthn credentials, their one-time challenges, and how a session was made

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 19:00:00.000000

Staff and above read medical notes, so a password alone is thin: a passkey (a key pair on the
user's phone or computer, unlocked by a fingerprint or PIN) signs them in instead. `passkey`
keeps only public keys; `webauthn_challenge` keeps a hash of each challenge until it is used once
or expires; `auth_session.second_factor` (migration 0018) says a session was made with one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'passkey',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('credential_id', sa.String(length=1400), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('sign_count', sa.BigInteger(), nullable=False),
        sa.Column('transports', sa.String(length=200), nullable=True),
        sa.Column('aaguid', sa.String(length=36), nullable=False),
        sa.Column('backed_up', sa.Boolean(), nullable=False),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('credential_id'),
    )
    op.create_index(op.f('ix_passkey_user_id'), 'passkey', ['user_id'], unique=False)
    op.create_table(
        'webauthn_challenge',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('challenge_hash', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=20), nullable=False),
        sa.Column('binding_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=True),
        sa.Column('client_addr', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('challenge_hash'),
    )
    op.create_index(
        op.f('ix_webauthn_challenge_binding_hash'),
        'webauthn_challenge',
        ['binding_hash'],
        unique=False,
    )
    op.create_index(
        op.f('ix_webauthn_challenge_expires_at'),
        'webauthn_challenge',
        ['expires_at'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_webauthn_challenge_expires_at'), table_name='webauthn_challenge')
    op.drop_index(op.f('ix_webauthn_challenge_binding_hash'), table_name='webauthn_challenge')
    op.drop_table('webauthn_challenge')
    op.drop_index(op.f('ix_passkey_user_id'), table_name='passkey')
    op.drop_table('passkey')
