"""Carries out a plan: one transaction, under a lock that holds across processes and hosts.

Interrupted at any point, the database holds the old state or the new one, never a mix. Before
writing, every operation is checked against the row it expects (its digest at plan time); a row
that changed since is refused by name. Writes are bulk statements per kind and table: deletes of
references, deletes of rows, inserts, updates, inserts of references, audit events.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from provisioning.ca import ensure_material
from reconciler.canonical import digest, is_protected, to_model
from reconciler.db import jobs, vault
from reconciler.db.audit import AuditEvent, append
from reconciler.db.engine import SQLITE_BEGIN, is_sqlite
from reconciler.db.models import KIND_TABLES, MANAGED_BY_SPEC, REF_TABLES
from reconciler.diff import REQUEST, Adopt, Create, Delete, Operation, Update
from reconciler.errors import MimError, format_path
from reconciler.load import paused_gc
from reconciler.plan import ACTIONS, Plan
from reconciler.resolve import SecretResolver, kinds_with_references, operation_secrets, redacted
from reconciler.state import State, read_state

LOCK_KEY = 0x4D494D  # "MIM": the advisory lock every apply takes on PostgreSQL
CHUNK = 500  # ids per IN (...) list


class LockTimeout(MimError):
    """Another apply held the lock for longer than we were willing to wait."""


class StalePlanError(MimError):
    """The database changed since the saved plan was made."""


class RowChangedError(MimError):
    """A row the plan touches changed since planning."""


class ApplyError(MimError):
    """An apply that cannot be carried out; nothing was written."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: dict[str, int]
    audit_events: int


def holder_description(actor: str) -> str:
    return f"mimctl apply by {actor} on {socket.gethostname()} pid {os.getpid()}"


@contextmanager
def apply_lock(engine: Engine, *, actor: str, timeout: float) -> Iterator[Connection]:
    """A connection inside a transaction that holds the apply lock until it ends."""
    holder = holder_description(actor)
    if is_sqlite(str(engine.url)):
        yield from _sqlite_lock(engine, holder)
    else:
        yield from _postgres_lock(engine, holder, timeout)


def _sidecar(engine: Engine) -> Path | None:
    database = engine.url.database
    return Path(f"{database}.apply-lock") if database and database != ":memory:" else None


def _sqlite_lock(engine: Engine, holder: str) -> Iterator[Connection]:
    sidecar = _sidecar(engine)
    with engine.connect() as connection:
        connection.info[SQLITE_BEGIN] = "BEGIN IMMEDIATE"
        try:
            transaction = connection.begin()
        except OperationalError as error:
            connection.info.pop(SQLITE_BEGIN, None)
            if "locked" not in str(error):
                raise
            who = "another process"
            if sidecar is not None and sidecar.exists():
                who = sidecar.read_text(encoding="utf-8").strip() or who
            raise LockTimeout(f"the database is locked by {who}; wait for it to finish, "
                              "or raise --lock-timeout") from None
        if sidecar is not None:
            sidecar.write_text(f"{holder} since {_now().isoformat(timespec='seconds')}\n",
                               encoding="utf-8")
        try:
            yield connection
            transaction.commit()
        except BaseException:
            transaction.rollback()
            raise
        finally:
            if sidecar is not None:
                sidecar.unlink(missing_ok=True)


def _postgres_lock(engine: Engine, holder: str, timeout: float) -> Iterator[Connection]:
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(text("SELECT set_config('application_name', :holder, false)"),
                               {"holder": holder[:63]})
            connection.execute(text("SELECT set_config('lock_timeout', :ms, true)"),
                               {"ms": f"{max(1, int(timeout * 1000))}ms"})  # 0 = forever
            try:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            except OperationalError:
                transaction.rollback()
                raise LockTimeout(f"the apply lock is held by {_postgres_holder(engine)}; wait "
                                  "for it to finish, or raise --lock-timeout") from None
            connection.execute(text("SELECT set_config('lock_timeout', '0', true)"))
            yield connection
            transaction.commit()
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise


def _postgres_holder(engine: Engine) -> str:
    query = text("""
        SELECT a.application_name, a.pid, a.client_addr, a.xact_start
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key
    """)
    with engine.connect() as connection:
        row = connection.execute(query, {"key": LOCK_KEY}).first()
    if row is None:
        return "another session (it has just finished)"
    since = f" since {row.xact_start:%Y-%m-%d %H:%M:%S %Z}" if row.xact_start else ""
    return f"{row.application_name or 'another session'} (backend pid {row.pid}){since}"


def _now() -> datetime:
    return datetime.now(UTC)


def default_actor() -> str:
    """Who is applying: MIM_ACTOR, else the git user (user.name, user.email), else the login."""
    actor = os.environ.get("MIM_ACTOR")
    if actor:
        return actor
    import subprocess

    try:
        name = subprocess.run(["git", "config", "user.name"], check=False, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        email = subprocess.run(["git", "config", "user.email"], check=False, capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = email = ""
    if name or email:
        return f"{name} <{email}>".strip() if email else name
    return getpass.getuser()


def apply_plan(engine: Engine, plan: Plan, *, actor: str, timeout: float = 30.0,
               check_state: bool = True,
               advance: Callable[[int], None] | None = None) -> ApplyResult:
    """Apply `plan` in one transaction under the apply lock.

    With `check_state` (a saved plan), any change to the database since planning refuses the
    whole plan; without it (plan and apply in one run), each operation's own row is checked.
    Secrets are read again first: one that changed since the plan refuses the whole plan.
    """
    resolver = SecretResolver(engine.url.render_as_string(hide_password=False))
    secrets = _read_secrets(plan.effective, resolver)
    with apply_lock(engine, actor=actor, timeout=timeout) as connection:
        state = read_state(connection)
        if check_state and state.fingerprint != plan.state_fingerprint:
            raise StalePlanError("the database changed since this plan was made; make a new "
                                 "plan (mimctl reconcile --plan --out FILE) and apply that")
        operations = plan.effective
        _check_rows(operations, state)
        now = _now()
        with paused_gc():
            _Writer(connection, state, now, advance).write(operations)
            _store_secrets(connection, operations, secrets, resolver, now)
            request_events = _settle_requests(connection, operations, resolver, actor, now)
            pki_events = ensure_material(connection, resolver.master_key, actor=actor, now=now)
        events = [*(_audit_event(op, plan, actor) for op in operations), *request_events,
                  *pki_events]
        written = append(connection, events, now)
    return ApplyResult(plan.summary(), written)


def maintain(engine: Engine, *, actor: str, timeout: float = 30.0) -> list[AuditEvent]:
    """What an apply does even when the specs match the database: bring the CA material in
    line (a content-signing certificate close to its end is issued again). Returns the events
    written, usually none."""
    resolver = SecretResolver(engine.url.render_as_string(hide_password=False))
    with apply_lock(engine, actor=actor, timeout=timeout) as connection:
        events = ensure_material(connection, resolver.master_key, actor=actor, now=_now())
        append(connection, events)
    return events


def _read_secrets(operations: list[Operation], resolver: SecretResolver
                  ) -> dict[tuple[str, str], dict[str, bytes]]:
    return {(op.kind, op.name): operation_secrets(op.kind, op.name, op.document, op.secrets,
                                                  resolver)
            for op in operations if not isinstance(op, Delete) and op.secrets}


def _store_secrets(connection: Connection, operations: list[Operation],
                   secrets: dict[tuple[str, str], dict[str, bytes]], resolver: SecretResolver,
                   now: datetime) -> None:
    """Replace the stored secrets of every object the plan writes or deletes (holder kinds)."""
    holders = kinds_with_references()
    for kind, ops in _by_kind(op for op in operations if op.kind in holders).items():
        vault.forget(connection, kind, [op.name for op in ops])
        values = {op.name: secrets[(kind, op.name)] for op in ops if (kind, op.name) in secrets}
        if values:
            vault.store(connection, resolver.master_key, kind, values, now)


def _settle_requests(connection: Connection, operations: list[Operation],
                     resolver: SecretResolver, actor: str, now: datetime) -> list[AuditEvent]:
    """Open the jobs of new requests and cancel those of removed ones (still open)."""
    created = [op for op in operations if isinstance(op, Create) and op.kind == REQUEST]
    canceled = [op.name for op in operations
                if isinstance(op, Delete) and op.kind == REQUEST and op.cancels]
    events = jobs.cancel_jobs(connection, canceled, actor=actor, now=now,
                              reason="request removed from the specs")
    if created:
        table = KIND_TABLES[REQUEST].table
        names = [op.name for op in created]
        ids = {name: row_id for chunk in _chunks(names) for row_id, name in connection.execute(
            select(table.c.id, table.c.name).where(table.c.name.in_(chunk)))}
        events += jobs.open_jobs(
            connection, resolver.master_key,
            [jobs.NewRequest(op.name, op.document["spec"]) for op in created], ids,
            actor=actor, now=now)
    return events


def _check_rows(operations: list[Operation], state: State) -> None:
    changed = []
    for op in operations:
        stored = state.objects.get((op.kind, op.name))
        if isinstance(op, Create):
            if stored is not None:
                changed.append(f"{op.kind}/{op.name} was created since the plan was made")
        elif stored is None:
            changed.append(f"{op.kind}/{op.name} was deleted since the plan was made")
        elif stored.digest != op.expected:
            changed.append(f"{op.kind}/{op.name} changed since the plan was made")
    if changed:
        raise RowChangedError("; ".join(changed) + ". Nothing was applied: make a new plan")


def _audit_event(op: Operation, plan: Plan, actor: str) -> AuditEvent:
    details: dict[str, Any] = {"plan_id": plan.plan_id, "git_commit": plan.git_commit,
                               "source": plan.source_path}
    if isinstance(op, (Update, Adopt, Delete)):
        details["before"] = op.expected
    if isinstance(op, (Create, Update, Adopt)):
        details["after"] = digest(op.document)
    if isinstance(op, (Update, Adopt)):
        details["changes"] = [{"op": c.op.value, "path": c.path, "old": redacted(c.old),
                               "new": redacted(c.new)} for c in op.changes]
    return AuditEvent(actor, f"{ACTIONS[type(op)]}", op.kind, op.name, details)


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


class _Writer:
    """The bulk statements of one apply."""

    def __init__(self, connection: Connection, state: State, now: datetime,
                 advance: Callable[[int], None] | None = None) -> None:
        self.connection = connection
        self.state = state
        self.now = now
        self.advance = advance or (lambda done: None)

    def write(self, operations: list[Operation]) -> None:
        deletes = [op for op in operations if isinstance(op, Delete)]
        creates = [op for op in operations if isinstance(op, Create)]
        rewrites = [op for op in operations if isinstance(op, (Update, Adopt))]
        self._check_deletable(deletes, rewrites)
        self._drop_references([*deletes, *rewrites])
        self._delete_rows(deletes)
        self.advance(len(deletes))
        self._insert_rows(creates)
        self.advance(len(creates))
        self._update_rows(rewrites)
        self.advance(len(rewrites))
        self._insert_references([*creates, *rewrites])

    def _stored_id(self, op: Operation) -> int:
        return self.state.objects[(op.kind, op.name)].id

    def _check_deletable(self, deletes: list[Delete], rewrites: list[Operation]) -> None:
        """A deleted object must not stay referenced by an object the plan leaves alone."""
        leaving = {(op.kind, self._stored_id(op)) for op in [*deletes, *rewrites]}
        names = {(o.kind, o.id): o.name for o in self.state.objects.values()}
        for kind, ops in _by_kind(deletes).items():
            if kind not in REF_TABLES:
                continue
            table = REF_TABLES[kind]
            ids = {self._stored_id(op): op.name for op in ops}
            for chunk in _chunks(list(ids)):
                rows = self.connection.execute(select(table).where(table.c.target_id.in_(chunk)))
                for row in rows:
                    if (row.source_kind, row.source_id) not in leaving:
                        user = names.get((row.source_kind, row.source_id), f"#{row.source_id}")
                        raise ApplyError(
                            f"cannot delete {kind}/{ids[row.target_id]}: "
                            f"{row.source_kind}/{user} still uses it ({row.path}); remove that "
                            "reference first. Nothing was applied")

    def _drop_references(self, operations: list[Operation]) -> None:
        for kind, ops in _by_kind(operations).items():
            ids = [self._stored_id(op) for op in ops]
            for table in REF_TABLES.values():
                for chunk in _chunks(ids):
                    self.connection.execute(delete(table).where(
                        table.c.source_kind == kind, table.c.source_id.in_(chunk)))

    def _delete_rows(self, deletes: list[Delete]) -> None:
        for kind, ops in _by_kind(deletes).items():  # plan order: children first
            table = KIND_TABLES[kind].table
            for chunk in _chunks([self._stored_id(op) for op in ops]):
                self.connection.execute(delete(table).where(table.c.id.in_(chunk)))

    def _columns(self, kind: str, document: dict[str, Any],
                 name: str | None = None) -> dict[str, Any]:
        # Protection is sticky: dropping the annotation does not lift it, `unprotect` does.
        stored = self.state.objects.get((kind, name)) if name is not None else None
        protected = is_protected(document) or bool(stored and stored.protected)
        values: dict[str, Any] = {"document": document, "protected": protected,
                                  "managed_by": MANAGED_BY_SPEC, "updated_at": self.now}
        for column, path in KIND_TABLES[kind].promoted.items():
            value: Any = document
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            values[column] = value
        return values

    def _insert_rows(self, creates: list[Create]) -> None:
        for kind, ops in _by_kind(creates).items():
            rows = [{**self._columns(kind, op.document), "name": op.name, "generation": 1,
                     "created_at": self.now} for op in ops]
            self.connection.execute(KIND_TABLES[kind].table.insert(), rows)

    def _update_rows(self, rewrites: list[Operation]) -> None:
        for kind, ops in _by_kind(rewrites).items():
            kind_table = KIND_TABLES[kind]
            table = kind_table.table
            names = ["document", "protected", "managed_by", "updated_at", *kind_table.promoted]
            statement = (update(table).where(table.c.id == bindparam("row_id"))
                         .values({n: bindparam(f"new_{n}") for n in names})
                         .values(generation=table.c.generation + 1))
            rows = []
            for op in ops:
                columns = self._columns(kind, op.document, op.name)  # type: ignore[attr-defined]
                rows.append({"row_id": self._stored_id(op),
                             **{f"new_{n}": columns[n] for n in names}})
            self.connection.execute(statement, rows)

    def _insert_references(self, operations: list[Operation]) -> None:
        if not operations:
            return
        ids: dict[str, dict[str, int]] = {}

        def id_map(kind: str, key: str = "name") -> dict[str, int]:
            cache_key = f"{kind}.{key}"
            if cache_key not in ids:
                table = KIND_TABLES[kind].table
                column = table.c.friendly_name if key == "friendlyName" else table.c.name
                ids[cache_key] = {value: row_id for row_id, value in
                                  self.connection.execute(select(table.c.id, column))}
            return ids[cache_key]

        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for op in operations:
            model = to_model(op.kind, op.name, op.document)  # type: ignore[attr-defined]
            source_id = id_map(op.kind)[op.name]
            for reference in model.references():
                target_id = id_map(reference.kind, reference.key).get(reference.name)
                if target_id is None:
                    raise ApplyError(f"{op.kind}/{op.name}: {format_path(reference.path)} names "
                                     f"{reference.kind} {reference.name!r}, which does not exist. "
                                     "Nothing was applied")
                rows[reference.kind].append({"source_kind": op.kind, "source_id": source_id,
                                             "path": format_path(reference.path),
                                             "target_id": target_id})
        for kind, values in rows.items():
            self.connection.execute(REF_TABLES[kind].insert(), values)


def _by_kind(operations: Iterable[Operation]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for op in operations:
        grouped.setdefault(op.kind, []).append(op)
    return grouped



def unprotect(engine: Engine, kind: str, name: str, *, actor: str, timeout: float = 30.0) -> None:
    """Lift the deletion guard of one object (the mim/protect annotation remembered in the row)."""
    if kind not in KIND_TABLES:
        raise ApplyError(f"unknown kind {kind!r}; known kinds: {', '.join(KIND_TABLES)}")
    table = KIND_TABLES[kind].table
    with apply_lock(engine, actor=actor, timeout=timeout) as connection:
        row = connection.execute(select(table.c.id, table.c.document, table.c.protected)
                                 .where(table.c.name == name)).first()
        if row is None:
            raise ApplyError(f"{kind}/{name} is not in the database")
        document = row.document
        annotations = document["metadata"]["annotations"]
        if not row.protected and "mim/protect" not in annotations:
            raise ApplyError(f"{kind}/{name} is not protected")
        annotations.pop("mim/protect", None)
        connection.execute(update(table).where(table.c.id == row.id).values(
            document=document, protected=False, updated_at=_now(),
            generation=table.c.generation + 1))
        append(connection, [AuditEvent(actor, "unprotect", kind, name, {})])
