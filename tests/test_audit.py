"""The audit log: read it, prove it intact, name the row where tampering broke it.

On PostgreSQL the table refuses UPDATE, DELETE and TRUNCATE; the tampering tests lift that
guard as a database owner could, to show `audit verify` catches what gets past it. On SQLite
there is no guard and the chain alone tells.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from reconciler.db.models import audit_events
from tests.collect_support import deploy


@pytest.fixture
def applied(mimctl, engine, database_url, tmp_path):
    deploy(mimctl, database_url, tmp_path)
    with engine.connect() as connection:
        ids = connection.execute(select(audit_events.c.id).order_by(audit_events.c.id))
        assert ids.scalars().all()[:4] == [1, 2, 3, 4]
    return engine


@contextmanager
def unguarded(engine) -> Any:
    """A transaction in which a PostgreSQL owner has switched the table's guard off."""
    with engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        yield connection
        if postgres:
            connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def verify(mimctl, database_url) -> tuple[int, str]:
    result = mimctl("--db", database_url, "audit", "verify")
    return result.exit_code, result.output


def test_an_untouched_log_verifies(applied, mimctl, database_url) -> None:
    code, output = verify(mimctl, database_url)
    assert code == 0 and output.startswith("audit log intact: ") and "hash chain verified" in output


def _edit(connection) -> None:
    row = connection.execute(select(audit_events).where(audit_events.c.id == 3)).one()
    connection.execute(audit_events.update().where(audit_events.c.id == 3).values(
        actor="someone else", details={**row.details}))


def _delete(connection) -> None:
    connection.execute(audit_events.delete().where(audit_events.c.id == 3))


def _swap(connection) -> None:
    two, three = (connection.execute(select(audit_events).where(audit_events.c.id == i)).one()
                  for i in (2, 3))
    columns = ("at", "actor", "action", "kind", "name", "details", "prev_hash", "hash")
    connection.execute(audit_events.update().where(audit_events.c.id == 3).values(
        hash="x" * 64))  # free the unique hash for the moment
    connection.execute(audit_events.update().where(audit_events.c.id == 2).values(
        **{column: getattr(three, column) for column in columns}))
    connection.execute(audit_events.update().where(audit_events.c.id == 3).values(
        **{column: getattr(two, column) for column in columns}))


@pytest.mark.parametrize(("tamper", "named"), [
    (_edit, "event 3: edited (its content no longer matches its hash)"),
    (_delete, "event 4: the event(s) before it were removed (it does not follow event 2)"),
    (_swap, "event 2: out of order (it does not follow event 1)"),
], ids=["edited", "deleted", "swapped"])
def test_tampering_is_found_at_its_row(applied, mimctl, database_url, tamper, named) -> None:
    with unguarded(applied) as connection:
        tamper(connection)
    code, output = verify(mimctl, database_url)
    assert code == 1
    assert output.splitlines()[0] == named
    assert "audit log NOT intact" in output


def test_postgresql_refuses_changes_to_the_log(applied) -> None:
    if applied.dialect.name != "postgresql":
        with applied.begin() as connection:  # SQLite has no guard: verify is the check
            connection.execute(audit_events.update().where(audit_events.c.id == 1).values(
                actor="x"))
        return
    for statement in (audit_events.update().values(actor="x"), audit_events.delete(),
                      text("TRUNCATE audit_events")):
        with pytest.raises(DBAPIError, match="append-only"), applied.begin() as connection:
            connection.execute(statement)
    with applied.connect() as connection:
        assert "x" not in connection.execute(select(audit_events.c.actor)).scalars().all()


def test_audit_log_filters_and_json(applied, mimctl, database_url) -> None:
    everything = mimctl("--db", database_url, "audit", "log").output.splitlines()
    creates = mimctl("--db", database_url, "audit", "log", "--action", "create", "--kind",
                     "Role").output.splitlines()
    assert len(creates) == 2 and all(" create " in line and "Role/" in line for line in creates)
    assert len(everything) > len(creates)
    as_json = [json.loads(line) for line in mimctl(
        "--db", database_url, "audit", "log", "--format", "json", "--action",
        "request-open").output.splitlines()]
    assert [event["name"] for event in as_json] == ["alice-first-phone"]
    assert as_json[0]["details"]["person"] == "alice"
    future = mimctl("--db", database_url, "audit", "log", "--since", "2999-01-01")
    assert future.exit_code == 0 and future.output == ""
    bad = mimctl("--db", database_url, "audit", "log", "--since", "yesterday")
    assert bad.exit_code == 2 and "not an ISO date" in bad.output
