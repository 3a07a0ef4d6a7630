"""How findings steer the commands: errors stop, warnings inform unless --strict."""

from __future__ import annotations

from sqlalchemy import func, select

from reconciler.db.models import KIND_TABLES
from tests.rules.base import changed, write

THREE_DES = {"settings.yaml": ("  contentSigning:\n",
                               "  security:\n    envelopeTransportKeyAlgorithm: 3DES\n"
                               "  contentSigning:\n")}
NO_SCHEME = {"settings.yaml": ("mobileCertificateRecoveryServiceUrl: https://mim.example.com",
                               "mobileCertificateRecoveryServiceUrl: mim.example.com")}


def test_a_warning_is_shown_and_only_strict_fails(mimctl, tmp_path, engine, database_url) -> None:
    root = write(tmp_path / "specs", changed(THREE_DES))
    result = mimctl("validate", root)
    assert result.exit_code == 0
    assert "Settings/system: spec.security.envelopeTransportKeyAlgorithm: warning:" in result.output
    assert result.output.splitlines()[-1].startswith("1 warning in 1 file (")
    assert mimctl("validate", "--strict", root).exit_code == 1

    planned = mimctl("--db", database_url, "reconcile", "--plan", root)
    assert planned.exit_code == 2
    assert "warning:" in planned.stderr and "warning:" not in planned.stdout
    assert planned.stdout.startswith("Plan: ")
    strict = mimctl("--db", database_url, "reconcile", "--plan", "--strict", root)
    assert strict.exit_code == 1 and "1 warning and --strict; nothing planned" in strict.output


def test_an_error_stops_plan_and_apply(mimctl, tmp_path, engine, database_url) -> None:
    root = write(tmp_path / "specs", changed(NO_SCHEME))
    planned = mimctl("--db", database_url, "reconcile", "--plan", root)
    assert planned.exit_code == 1
    assert "Settings/system: spec.certificates.mobileCertificateRecoveryServiceUrl: " in planned.output
    assert "1 error in the specs; nothing planned" in planned.output
    applied = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
    assert applied.exit_code == 1 and "nothing planned" in applied.output
    with engine.connect() as connection:
        for kind_table in KIND_TABLES.values():
            table = kind_table.table
            count = connection.execute(select(func.count()).select_from(table)).scalar()
            assert count == (2 if table.name == "card_formats" else 0), table.name
