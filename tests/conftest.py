"""Shared fixtures: spec trees written to temporary folders, and the CLI."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The example spec repositories (examples/ci holds CI recipes, not specs).
SPEC_EXAMPLES = sorted(path for path in EXAMPLES.iterdir() if path.is_dir() and path.name != "ci")


@pytest.fixture
def write_tree(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write {relative path: YAML text} under a fresh folder (text is dedented) and return it."""

    def write(files: dict[str, str]) -> Path:
        root = tmp_path / "specs"
        for relative, text in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        root.mkdir(exist_ok=True)
        return root

    return write


@pytest.fixture
def mimctl() -> Callable[..., object]:
    """Run the mimctl CLI in-process; returns click's Result."""
    from cli import main

    runner = CliRunner()

    def run(*args: str, **kwargs: object) -> object:
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return run


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh, empty database: PostgreSQL when MIM_TEST_DATABASE_URL is set, else SQLite."""
    import os

    url = os.environ.get("MIM_TEST_DATABASE_URL")
    if url:
        from reconciler.db.engine import resolve_url

        url = resolve_url(url)
        _reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'mim.sqlite3'}"


@pytest.fixture
def engine(database_url: str):
    """An engine on a fresh database migrated to the current schema."""
    from reconciler.db.engine import make_engine, upgrade

    engine = make_engine(database_url, lock_timeout=5)
    upgrade(engine)
    yield engine
    engine.dispose()


# Test values of the environment variables the examples' secrets point at.
EXAMPLE_SECRETS = {
    "INTUNE_CLIENT_SECRET": "example-intune-client-secret-Q7d9",
    "INTUNE_CLIENT_KEY": "example-intune-client-key-Z3x1",
    "SMTP_PASSWORD": "example-smtp-password-K8m2",
    "WS1_API_KEY": "example-ws1-api-key-R5t6",
    "WS1_PASSWORD": "example-ws1-password-W4v8",
}
TEST_MASTER_KEY = "bWltY3RsIHRlc3QgbWFzdGVyIGtleSwgMzIgYnl0ZXM="  # 32 bytes, tests only


@pytest.fixture(autouse=True)
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A master key and the examples' secrets in the environment; tests may remove them."""
    monkeypatch.setenv("MIM_MASTER_KEY", TEST_MASTER_KEY)
    for variable in ("MIM_MASTER_KEY_FILE", "MIM_SEAL_KEY", "MIM_SEAL_KEY_FILE"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in EXAMPLE_SECRETS.items():
        monkeypatch.setenv(variable, value)
    return EXAMPLE_SECRETS
