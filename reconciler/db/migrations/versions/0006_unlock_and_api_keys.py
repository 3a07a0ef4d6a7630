"""unlock codes and API keys

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

Unlock codes record which operator obtained a response for which device challenge, so the
device's confirmation is accepted once. API keys authenticate the devices API; only the
SHA-256 of each secret is kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'unlock_codes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('challenge', sa.String(length=64), nullable=False),
        sa.Column('issued_by', sa.String(length=256), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE',
                                name=op.f('fk_unlock_codes_device_id_devices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_unlock_codes')),
    )
    op.create_index('ix_unlock_codes_device', 'unlock_codes', ['device_id', 'challenge'])
    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('person_name', sa.String(length=128), nullable=False),
        sa.Column('label', sa.String(length=128), nullable=True),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.String(length=256), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
        sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash')),
    )


def downgrade() -> None:
    op.drop_table('api_keys')
    op.drop_index('ix_unlock_codes_device', table_name='unlock_codes')
    op.drop_table('unlock_codes')
