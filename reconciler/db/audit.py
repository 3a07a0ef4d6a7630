"""The append-only, hash-chained audit log.

Each event's hash covers the previous event's hash and the event's own content, so editing or
deleting any event breaks every hash after it. Events are appended in bulk, inside the same
transaction as the change they describe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from reconciler.db.models import audit_events

GENESIS = "0" * 64
CHAIN_LOCK = 0x4D494D41  # "MIMA": the advisory lock that orders appends on PostgreSQL


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, to what, by whom; `details` must hold no secret."""

    actor: str
    action: str
    kind: str | None
    name: str | None
    details: dict[str, Any]


def _event_hash(prev_hash: str, at: str, event: AuditEvent) -> str:
    payload = json.dumps({"prev": prev_hash, "at": at, "actor": event.actor,
                          "action": event.action, "kind": event.kind, "name": event.name,
                          "details": event.details}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def append(connection: Connection, events: Iterable[AuditEvent],
           now: datetime | None = None) -> int:
    """Append events to the chain in one statement; returns how many were written."""
    now = now or datetime.now(UTC)
    at = now.isoformat()
    if connection.dialect.name == "postgresql":
        # Concurrent writers (service workers, apply, notify) must not both extend the same
        # event: the chain is serialized by a transaction-scoped lock. SQLite writers are
        # serialized by the database lock already.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    prev = connection.execute(
        select(audit_events.c.hash).order_by(audit_events.c.id.desc()).limit(1)).scalar()
    prev = prev or GENESIS
    rows = []
    for event in events:
        details = {**event.details, "at": at}
        digest = _event_hash(prev, at, AuditEvent(event.actor, event.action, event.kind,
                                                  event.name, details))
        rows.append({"at": now, "actor": event.actor, "action": event.action,
                     "kind": event.kind, "name": event.name, "details": details,
                     "prev_hash": prev, "hash": digest})
        prev = digest
    if rows:
        connection.execute(audit_events.insert(), rows)
    return len(rows)


def verify(connection: Connection) -> list[str]:
    """Problems found walking the chain from the first event; an empty list means intact.

    Each problem names the row where the chain breaks and what happened there: a row whose
    content no longer matches its own hash was edited; a row that does not follow its
    predecessor follows another row of the log (rows reordered) or none (rows removed before
    it). Rows are read in batches, never all at once.
    """
    problems: list[str] = []
    hashes = set(connection.execute(select(audit_events.c.hash)).scalars())
    prev, prev_id = GENESIS, None
    rows = connection.execution_options(yield_per=1000).execute(
        select(audit_events).order_by(audit_events.c.id))
    for row in rows:
        details = row.details
        expected = _event_hash(row.prev_hash, details.get("at", ""), AuditEvent(
            row.actor, row.action, row.kind, row.name, details))
        if row.hash != expected:
            problems.append(f"event {row.id}: edited (its content no longer matches its hash)")
        elif row.prev_hash != prev:
            after = f"event {prev_id}" if prev_id is not None else "the start of the log"
            if row.prev_hash in hashes:
                problems.append(f"event {row.id}: out of order (it does not follow {after})")
            else:
                problems.append(f"event {row.id}: the event(s) before it were removed (it "
                                f"does not follow {after})")
        prev, prev_id = row.hash, row.id
    return problems


# The PostgreSQL guard (migration 0007): the table refuses UPDATE, DELETE and TRUNCATE.
POSTGRES_GUARD = """
CREATE OR REPLACE FUNCTION mim_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION mim_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION mim_audit_append_only();
"""
POSTGRES_UNGUARD = """
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
DROP FUNCTION IF EXISTS mim_audit_append_only();
"""
