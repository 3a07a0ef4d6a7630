"""`mimctl export`: the live configuration back as specs that plan with no changes."""

from __future__ import annotations

import pytest

from reconciler.db import vault
from tests.collect_support import KEY
from tests.conftest import EXAMPLES, EXAMPLE_SECRETS


@pytest.mark.parametrize("example", ["quickstart", "intune-derived-credentials"])
def test_export_then_plan_shows_no_changes(mimctl, engine, database_url, tmp_path, monkeypatch,
                                           example) -> None:
    applied = mimctl("--db", database_url, "reconcile", "--apply", EXAMPLES / example, "--yes")
    assert applied.exit_code == 0, applied.output
    out = tmp_path / "exported"
    exported = mimctl("--db", database_url, "export", "--out", out)
    assert exported.exit_code == 0, exported.output

    # Fill in each secret the export asks for, from what the database holds.
    prefix = "secret to fill in: "
    asked = [line.removeprefix(prefix) for line in exported.output.splitlines()
             if line.startswith(prefix)]
    with engine.connect() as connection:
        for line in asked:  # MIM_..._CLIENTSECRET (ExternalSystem/Intune Production spec....)
            variable, where = line.split(" ", 1)
            subject, path = where.strip("()").rsplit(" ", 1)
            kind, name = subject.split("/", 1)
            monkeypatch.setenv(variable, vault.read(connection, KEY, kind, name)[path].decode())
    expected = len(EXAMPLE_SECRETS) if example == "intune-derived-credentials" else 0
    assert len(asked) == expected
    text = "".join(path.read_text() for path in sorted(out.iterdir()))
    assert all(secret not in text for secret in EXAMPLE_SECRETS.values())

    planned = mimctl("--db", database_url, "reconcile", "--plan", out)
    assert planned.exit_code == 0, planned.output
    assert "No changes. The database matches the specs." in planned.output


def test_export_of_the_quickstart(mimctl, engine, database_url, snapshot) -> None:
    assert mimctl("--db", database_url, "reconcile", "--apply", EXAMPLES / "quickstart",
                  "--yes").exit_code == 0
    exported = mimctl("--db", database_url, "export")
    assert exported.exit_code == 0
    assert exported.output == snapshot
