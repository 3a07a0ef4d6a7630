"""collection sessions, issued devices and certificates, as the provisioning service uses them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Sessions keep what the device reported and what they deliver; devices gain model, OS version
and the session that made them; certificates gain their owner, where their key was made and,
for policies that archive keys, the key under the master key. Nothing wrote these tables before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions') as batch:
        batch.add_column(sa.Column('device', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('items', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('device_id', sa.Integer(), nullable=True))
        batch.create_index('ix_sessions_live', ['state', 'expires_at'])
    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('model', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('os_version', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('session_id', sa.String(length=64), nullable=True))
    with op.batch_alter_table('certificates') as batch:
        batch.add_column(sa.Column('person_name', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('source', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('archived_key', sa.LargeBinary(), nullable=True))
        batch.create_index(batch.f('ix_certificates_person_name'), ['person_name'])


def downgrade() -> None:
    with op.batch_alter_table('certificates') as batch:
        batch.drop_index(batch.f('ix_certificates_person_name'))
        batch.drop_column('archived_key')
        batch.drop_column('source')
        batch.drop_column('person_name')
    with op.batch_alter_table('devices') as batch:
        batch.drop_column('session_id')
        batch.drop_column('os_version')
        batch.drop_column('model')
    with op.batch_alter_table('sessions') as batch:
        batch.drop_index('ix_sessions_live')
        batch.drop_column('device_id')
        batch.drop_column('items')
        batch.drop_column('device')
