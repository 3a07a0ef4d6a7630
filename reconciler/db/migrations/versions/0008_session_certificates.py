"""certificates know the collection session that issued them; renewals wait for confirmation

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

A session that ends unconfirmed (timed out, or replaced by a new collect) revokes exactly the
certificates it issued. A renewal or update keeps the device's new token and unlock key in its
session until the device confirms, so an unconfirmed one leaves the device as it was.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('certificates') as batch:
        batch.add_column(sa.Column('session_id', sa.String(length=64), nullable=True))
        batch.create_index('ix_certificates_session_id', ['session_id'])
    with op.batch_alter_table('sessions') as batch:
        batch.add_column(sa.Column('renewal', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sessions') as batch:
        batch.drop_column('renewal')
    with op.batch_alter_table('certificates') as batch:
        batch.drop_index('ix_certificates_session_id')
        batch.drop_column('session_id')
