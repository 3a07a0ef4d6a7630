"""request jobs and the outbox, as pending requests use them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Jobs gain the device a Replace/Update/Renew is for, the delivery, the code sealed until it is
shown once, and their life's timestamps. Outbox messages keep their content encrypted under the
master key (`payload` replaces `body`), say which system carries them, and can be claimed by
one sender at a time. Nothing wrote either table before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('request_jobs') as batch:
        batch.alter_column('status', type_=sa.String(length=24), existing_nullable=False)
        batch.add_column(sa.Column('delivery', sa.String(length=16), nullable=False,
                                   server_default='Email'))
        batch.add_column(sa.Column('device_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('code_sealed', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('reason', sa.Text(), nullable=True))
        batch.add_column(sa.Column('collected_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f('ix_request_jobs_request_name'), ['request_name'])
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('body')
        batch.drop_column('subject')
        batch.add_column(sa.Column('message_id', sa.String(length=64), nullable=False))
        batch.add_column(sa.Column('purpose', sa.String(length=16), nullable=False))
        batch.add_column(sa.Column('system', sa.String(length=128), nullable=False))
        batch.add_column(sa.Column('payload', sa.LargeBinary(), nullable=False))
        batch.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch.alter_column('next_attempt_at', existing_type=sa.DateTime(timezone=True),
                           nullable=False)
        batch.create_unique_constraint(batch.f('uq_outbox_message_id'), ['message_id'])
        batch.create_index('ix_outbox_due', ['status', 'next_attempt_at'])


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_index('ix_outbox_due')
        batch.drop_constraint(batch.f('uq_outbox_message_id'), type_='unique')
        for column in ('claimed_at', 'claimed_by', 'payload', 'system', 'purpose', 'message_id'):
            batch.drop_column(column)
        batch.add_column(sa.Column('subject', sa.String(length=256), nullable=True))
        batch.add_column(sa.Column('body', sa.Text(), nullable=False))
    with op.batch_alter_table('request_jobs') as batch:
        batch.drop_index(batch.f('ix_request_jobs_request_name'))
        for column in ('canceled_at', 'collected_at', 'reason', 'code_sealed', 'device_id',
                       'delivery'):
            batch.drop_column(column)
        batch.alter_column('status', type_=sa.String(length=16), existing_nullable=False)
