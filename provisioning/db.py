"""The service's database: one engine per app, and the master key, both opened on first use.

`init_app` only records where the database is (the app's `DATABASE_URL`); the engine is made
the first time a view asks for it, so importing the app or calling `create_app()` — as gunicorn
does in every worker — touches nothing. Each worker process then has its own engine and pool,
shared by its threads. The master key (reconciler/db/vault.py) is read the same way, once per
app, and never created here: a service that finds none refuses instead of inventing one the
CLI does not know.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from reconciler.db import vault
from reconciler.db.engine import SQLITE_BEGIN, is_sqlite, make_engine

EXTENSION = "mim.db"


@dataclass(slots=True)
class _Opened:
    """What one app has opened on its database, made once under the lock."""

    url: str
    engine: Engine | None = None
    master_key: vault.MasterKey | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def init_app(app: Flask) -> None:
    """Attach the database named by `app.config["DATABASE_URL"]`, without connecting."""
    app.extensions[EXTENSION] = _Opened(app.config["DATABASE_URL"])


def _opened(app: Flask) -> _Opened:
    try:
        opened: _Opened = app.extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("the app has no database: call provisioning.db.init_app(app) "
                           "(create_app does)") from None
    return opened


def engine_of(app: Flask) -> Engine:
    """The app's engine, made on first use."""
    opened = _opened(app)
    with opened.lock:
        if opened.engine is None:
            opened.engine = make_engine(opened.url)
        return opened.engine


def get_engine() -> Engine:
    """The current app's engine (inside a request or an app context)."""
    return engine_of(current_app)


def master_key() -> vault.MasterKey:
    """The current app's master key, read once (MIM_MASTER_KEY, the key file, the sidecar)."""
    opened = _opened(current_app)
    with opened.lock:
        if opened.master_key is None:
            opened.master_key = vault.load_master_key(opened.url, create=False)
        return opened.master_key


def dispose(app: Flask) -> None:
    """Stop the app's outbox sender and close its pooled connections (tests, shutdown)."""
    sender = app.extensions.pop("mim.sender", None)
    if sender is not None:
        sender.stop()
    opened = _opened(app)
    with opened.lock:
        if opened.engine is not None:
            opened.engine.dispose()
            opened.engine = None


@contextmanager
def write_transaction(engine: Engine, *, lock: int | None = None) -> Iterator[Connection]:
    """A short write transaction, committed at the end of the block.

    On SQLite it takes the database's write lock up front (`BEGIN IMMEDIATE`), which also
    serializes it against every other writer. On PostgreSQL, `lock` names an advisory lock held
    until the transaction ends: transactions passing the same number run one at a time, across
    every worker and host (how the session cap stays exact).
    """
    with engine.connect() as connection:
        sqlite = is_sqlite(str(engine.url))
        if sqlite:
            connection.info[SQLITE_BEGIN] = "BEGIN IMMEDIATE"
        with connection.begin():
            if lock is not None and not sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})
            yield connection
