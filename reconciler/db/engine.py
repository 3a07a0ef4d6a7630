"""Opening the database: URL resolution, engine set-up per dialect, schema version checks.

SQLite is the embedded default (`sqlite:///mim.sqlite3` in the working directory); every
multi-process deployment uses PostgreSQL through `MIM_DATABASE_URL` or `--db`. On SQLite we
run our own `BEGIN` (pysqlite's implicit transactions would defeat `BEGIN IMMEDIATE`, which
is how an apply takes SQLite's write lock up front) and switch foreign keys on per connection.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url

from reconciler.errors import MimError

DEFAULT_URL = "sqlite:///mim.sqlite3"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BEGIN = "mim_sqlite_begin"


class SchemaError(MimError):
    """The database's schema is not the one this mimctl needs."""


def resolve_url(url: str | None) -> str:
    """The database URL: the argument, else MIM_DATABASE_URL, else the embedded default."""
    url = url or os.environ.get("MIM_DATABASE_URL") or DEFAULT_URL
    if url.startswith("postgresql://"):  # psycopg 3 is the driver we ship
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str | None = None, *, lock_timeout: float = 30.0) -> Engine:
    """An engine for the URL; `lock_timeout` bounds how long SQLite waits for the write lock."""
    url = resolve_url(url)
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, future=True)
    engine = create_engine(url, connect_args={"timeout": lock_timeout}, future=True)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql(connection.info.pop(SQLITE_BEGIN, "BEGIN"))

    return engine


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the database to the newest schema; returns (before, after) revisions."""
    before = current_revision(engine)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")
    return before, head_revision()


def ensure_schema(engine: Engine) -> None:
    """Refuse a database whose schema is not current; create the embedded one on first use."""
    revision = current_revision(engine)
    head = head_revision()
    if revision == head:
        return
    if revision is None and is_sqlite(str(engine.url)) and _is_empty(engine):
        upgrade(engine)
        return
    where = engine.url.render_as_string(hide_password=True)
    if revision is None:
        raise SchemaError(f"{where} has no mimctl schema; run `mimctl db upgrade` to create it")
    raise SchemaError(f"{where} has schema revision {revision}, this mimctl needs {head}; "
                      "run `mimctl db upgrade`")


def _is_empty(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return not inspect(engine).get_table_names()
