"""Reads the configuration in the database into the canonical form specs are compared in.

One SELECT per kind, whatever the number of objects (DESIGN.md §11), and one for the status of
the requests' jobs: state reading must stay flat as a deployment grows to tens of thousands of
people and requests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Connection

from reconciler.canonical import Canonical, digest
from reconciler.db.models import KIND_TABLES, MANAGED_BY_BUILTIN, request_jobs

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A configuration row as the reconciler sees it."""

    kind: str
    name: str
    id: int
    managed_by: str
    protected: bool
    document: Canonical
    digest: str


@dataclass(slots=True)
class State:
    """Every configuration object in the database, and a fingerprint of all of them."""

    objects: dict[Key, StoredObject] = field(default_factory=dict)
    fingerprint: str = ""
    request_status: dict[str, str] = field(default_factory=dict)  # request name -> its job


def read_state(connection: Connection) -> State:
    """Read every configuration row (built-ins excepted), one query per kind."""
    state = State()
    overall = hashlib.sha256()
    for kind, kind_table in KIND_TABLES.items():
        table = kind_table.table
        promoted = kind_table.promoted
        columns = [table.c.id, table.c.name, table.c.managed_by, table.c.protected,
                   table.c.document, *(table.c[column] for column in promoted)]
        rows = connection.execute(select(*columns).where(
            table.c.managed_by != MANAGED_BY_BUILTIN)).all()
        for row in sorted(rows, key=lambda r: r.name):
            document = row.document
            for column, path in promoted.items():
                _set(document, path, getattr(row, column))
            row_digest = digest(document)
            state.objects[(kind, row.name)] = StoredObject(
                kind, row.name, row.id, row.managed_by, bool(row.protected), document, row_digest)
            overall.update(f"{kind}\0{row.name}\0{row.managed_by}\0{bool(row.protected)}\0"
                           f"{row_digest}\n".encode())
    state.fingerprint = overall.hexdigest()
    state.request_status = _request_status(connection)
    return state


def _request_status(connection: Connection) -> dict[str, str]:
    """The status of each applied request's newest job (one query)."""
    requests = KIND_TABLES["MobileRequest"].table
    newest: dict[str, tuple[int, str]] = {}
    for name, job_id, status in connection.execute(
            select(requests.c.name, request_jobs.c.id, request_jobs.c.status)
            .join(request_jobs, request_jobs.c.request_id == requests.c.id)):
        if name not in newest or newest[name][0] < job_id:
            newest[name] = (job_id, status)
    return {name: status for name, (_, status) in newest.items()}


def _set(document: Canonical, path: tuple[str, ...], value: object) -> None:
    target = document
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
