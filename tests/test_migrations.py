"""The migrations build exactly the schema the models describe, and go back down cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from reconciler.db.engine import _alembic_config, current_revision
from reconciler.db.models import metadata


def test_migrated_schema_matches_the_models(engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_downgrade_to_the_first_revision_and_up_again(engine) -> None:
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
