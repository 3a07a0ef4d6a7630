"""Alembic environment: migrations run on the connection mimctl hands over."""

from __future__ import annotations

from alembic import context

from reconciler.db.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - mimctl always passes its connection
    raise RuntimeError("run migrations through `mimctl db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
