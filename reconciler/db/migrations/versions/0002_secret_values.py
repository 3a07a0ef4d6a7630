"""secret values

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Secrets of configuration objects, encrypted at rest under the master key; documents keep only
a keyed fingerprint of each.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'secret_values',
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('path', sa.String(length=256), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'name', 'path', name=op.f('pk_secret_values')),
    )


def downgrade() -> None:
    op.drop_table('secret_values')
