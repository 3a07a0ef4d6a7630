"""Helpers for the collection tests: the quickstart applied, its code and token, the service.

    root = deploy(mimctl, database_url, tmp_path, edits={"profiles.yaml": [(old, new)]})
    token, code = token_of(engine), code_of(engine)      # the request alice-first-phone
    with service(database_url) as client:               # the real app on 127.0.0.1
        device = SimulatedDevice(client)
        device.collect(token, code)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from reconciler.db import jobs, vault
from reconciler.db.models import request_jobs
from tests.conftest import EXAMPLES, TEST_MASTER_KEY
from tests.servers.harness import serve

KEY = vault.MasterKey.parse(TEST_MASTER_KEY)
REQUEST = "alice-first-phone"
Edits = dict[str, list[tuple[str, str]]]


def deploy(mimctl: Any, database_url: str, tmp_path: Path, *, edits: Edits | None = None,
           extra: str = "") -> Path:
    """Apply the quickstart, changed by `edits` ({file: [(old, new)]}) and `extra` documents."""
    root = tmp_path / "specs"
    shutil.copytree(EXAMPLES / "quickstart", root)
    for name, changes in (edits or {}).items():
        path = root / name
        text = path.read_text(encoding="utf-8")
        for old, new in changes:
            assert old in text, f"{old!r} is not in {name}"
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")
    if extra:
        (root / "extra.yaml").write_text(extra, encoding="utf-8")
    applied = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
    assert applied.exit_code == 0, applied.output
    return root


def token_of(engine: Engine, request: str = REQUEST) -> str:
    with engine.connect() as connection:
        return connection.execute(select(request_jobs.c.token).where(
            request_jobs.c.request_name == request)).scalar_one()


def code_of(engine: Engine, request: str = REQUEST) -> str:
    """The request's code as the operator reads it out (ShowCode: shown once)."""
    with engine.begin() as connection:
        return jobs.reveal_code(connection, KEY, request)


@contextmanager
def service(database_url: str, **config: Any) -> Iterator[httpx.Client]:
    """The provisioning service on 127.0.0.1, and an httpx client pointed at it."""
    from provisioning.app import create_app
    from provisioning.db import dispose

    # No background sender unless asked: tests flush the outbox themselves.
    app = create_app({"DATABASE_URL": database_url, "NOTIFY_INTERVAL": 0, **config})
    try:
        with serve(app) as running, httpx.Client(base_url=running.url, timeout=30) as client:
            yield client
    finally:
        dispose(app)


def rows(engine: Engine, *, leave_out: tuple[str, ...] = ("audit_events",)) -> dict[str, Any]:
    """Every row of every table but those left out: to show that nothing else changed."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {table.name: sorted(map(repr, connection.execute(table.select())))
                for table in metadata.sorted_tables if table.name not in leave_out}


def now() -> datetime:
    return datetime.now(UTC)


def issuing_ca(engine: Engine) -> Any:
    """The quickstart's issuing CA certificate (x509.Certificate)."""
    from provisioning.ca import load_authority

    with engine.connect() as connection:
        return load_authority(connection, KEY, "issuing-ca").certificate


def finish(device: Any, session: httpx.Response, engine: Engine) -> dict[str, Any]:
    """Package and complete a session `device` (a SimulatedDevice) opened; returns its package,
    opened and its signature checked against the issuing CA."""
    assert session.status_code == 201, session.text
    sid = session.json()["sessionId"]
    packaged = device.package(sid, device.csrs(session.json()["certificates"]))
    assert packaged.status_code == 200, packaged.text
    assert device.complete(sid).status_code == 200
    package, _ = device.open(packaged.json()["envelope"], [issuing_ca(engine)])
    return package
