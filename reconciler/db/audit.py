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
    """Problems found walking the chain from the first event; an empty list means intact."""
    problems = []
    prev = GENESIS
    for row in connection.execute(select(audit_events).order_by(audit_events.c.id)):
        details = row.details
        expected = _event_hash(prev, details.get("at", ""), AuditEvent(
            row.actor, row.action, row.kind, row.name, details))
        if row.prev_hash != prev:
            problems.append(f"event {row.id}: previous hash does not match event before it")
        if row.hash != expected:
            problems.append(f"event {row.id}: content does not match its hash (edited?)")
        prev = row.hash
    return problems
