"""the newest CRL of each CA

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Each CA's CRL is kept with its number and a digest of its entries, so every worker serves the
same CRL until a revocation changes it, and numbers only ever grow.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'crls',
        sa.Column('authority_name', sa.String(length=128), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('entries_digest', sa.String(length=64), nullable=False),
        sa.Column('der', sa.LargeBinary(), nullable=False),
        sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('authority_name', name=op.f('pk_crls')),
    )


def downgrade() -> None:
    op.drop_table('crls')
