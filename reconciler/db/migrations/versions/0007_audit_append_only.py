"""the audit log refuses UPDATE, DELETE and TRUNCATE on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

A trigger raises on any change to an existing audit row, so even a connection with write
access to the table can only append. SQLite has no such guard; `mimctl audit verify` detects
any change there by the hash chain.
"""

from __future__ import annotations

from alembic import op

from reconciler.db.audit import POSTGRES_GUARD, POSTGRES_UNGUARD

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_UNGUARD)
