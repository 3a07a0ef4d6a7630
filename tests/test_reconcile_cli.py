"""`mimctl reconcile`, `db upgrade` and `unprotect` through the real CLI and a real database."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import create_engine

from tests.conftest import EXAMPLES


@pytest.fixture
def db(engine, database_url) -> str:
    """The URL of a fresh database already at the current schema."""
    return database_url


def test_plan_apply_replan_exit_codes(mimctl, db) -> None:
    planned = mimctl("--db", db, "reconcile", "--plan", EXAMPLES / "quickstart")
    assert planned.exit_code == 2, planned.output
    assert planned.output.startswith("Plan: 10 to create, 0 to update, 0 to adopt, 0 to delete.")
    applied = mimctl("--db", db, "reconcile", "--apply", EXAMPLES / "quickstart", "--yes")
    assert applied.exit_code == 0, applied.output
    assert applied.output.rstrip().endswith("Applied: 10 created, 0 updated, 0 adopted, 0 deleted")
    again = mimctl("--db", db, "reconcile", "--plan", EXAMPLES / "quickstart")
    assert (again.exit_code, again.output) == (0, "No changes. The database matches the specs.\n")


def test_invalid_specs_exit_1_and_name_the_place(mimctl, db, write_tree) -> None:
    root = write_tree({"role.yaml": "apiVersion: mim/v1\nkind: Role\nmetadata: {name: R}\n"
                                    "spec: {scope: Everyone}\n"})
    result = mimctl("--db", db, "reconcile", "--plan", root)
    assert result.exit_code == 1
    assert "role.yaml:4:15: Role/R: spec.scope: must be one of" in result.output
    assert "1 error in the specs; nothing planned" in result.output


def test_markdown_and_json_formats(mimctl, db) -> None:
    markdown = mimctl("--db", db, "reconcile", "--plan", "--format", "markdown",
                      EXAMPLES / "quickstart")
    assert markdown.exit_code == 2 and markdown.output.startswith("### mimctl plan")
    as_json = mimctl("--db", db, "reconcile", "--plan", "--format", "json",
                     EXAMPLES / "quickstart")
    data = json.loads(as_json.output)
    assert data["format_version"] == 1 and data["summary"]["create"] == 10


def test_saved_plan_applies_exactly_and_stale_one_is_refused(mimctl, db, tmp_path,
                                                             write_tree) -> None:
    saved = tmp_path / "plan.json"
    made = mimctl("--db", db, "reconcile", "--plan", EXAMPLES / "quickstart",
                  "--out", saved)
    assert made.exit_code == 2 and json.loads(saved.read_text())["summary"]["create"] == 10
    applied = mimctl("--db", db, "reconcile", "--apply", saved)
    assert applied.exit_code == 0, applied.output
    assert "Applied: 10 created" in applied.output

    stale = tmp_path / "stale.json"
    root = write_tree({})
    shutil.copytree(EXAMPLES / "quickstart", root, dirs_exist_ok=True)
    (root / "requests.yaml").unlink()
    assert mimctl("--db", db, "reconcile", "--plan", root, "--out", stale).exit_code == 2
    assert mimctl("--db", db, "reconcile", "--apply", root, "--yes").exit_code == 0
    refused = mimctl("--db", db, "reconcile", "--apply", stale)
    assert refused.exit_code == 1
    assert "the database changed since this plan was made; make a new plan" in refused.output


def test_apply_off_a_terminal_needs_yes(mimctl, db) -> None:
    result = mimctl("--db", db, "reconcile", "--apply", EXAMPLES / "quickstart")
    assert result.exit_code == 1
    assert "not on a terminal: pass --yes" in result.output


def test_guards_fail_the_plan_with_a_way_forward(mimctl, db, write_tree) -> None:
    root = write_tree({})
    shutil.copytree(EXAMPLES / "intune-derived-credentials", root, dirs_exist_ok=True)
    assert mimctl("--db", db, "reconcile", "--apply", root, "--yes").exit_code == 0
    shutil.rmtree(root / "pki")
    settings = root / "settings.yaml"  # its content signing names the CA
    settings.write_text(settings.read_text().split("  contentSigning:")[0])
    (root / "profiles" / "badge.yaml").unlink()
    for profile in ("intune.yaml", "workspace-one.yaml"):
        (root / "profiles" / profile).unlink()
    (root / "requests" / "pending.yaml").unlink()
    result = mimctl("--db", db, "reconcile", "--plan", root)
    assert result.exit_code == 1
    assert "the plan deletes protected objects: CertificateAuthority/corp-mobile-ca." in result.output
    unprotected = mimctl("--db", db, "unprotect", "CertificateAuthority/corp-mobile-ca")
    assert unprotected.exit_code == 0, unprotected.output
    again = mimctl("--db", db, "reconcile", "--plan", root, "--max-deletes", "3")
    assert again.exit_code == 1
    assert "more than --max-deletes 3" in again.output
    allowed = mimctl("--db", db, "reconcile", "--apply", root, "--yes",
                     "--max-deletes", "20")
    assert allowed.exit_code == 0, allowed.output


def test_unmigrated_database_says_what_to_do(mimctl, database_url) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE unrelated (id INTEGER)")
    engine.dispose()
    result = mimctl("--db", database_url, "reconcile", "--plan", EXAMPLES / "quickstart")
    assert result.exit_code == 1
    assert "has no mimctl schema; run `mimctl db upgrade` to create it" in result.output
    upgraded = mimctl("--db", database_url, "db", "upgrade")
    assert upgraded.exit_code == 0 and "to revision 0008" in upgraded.output
    assert mimctl("--db", database_url, "db", "upgrade").output.endswith("up to date (revision 0008)\n")
    assert mimctl("--db", database_url, "reconcile", "--plan", EXAMPLES / "quickstart").exit_code == 2


def test_mode_is_required(mimctl) -> None:
    result = mimctl("reconcile", EXAMPLES / "quickstart")
    assert result.exit_code == 2 and "give --plan or --apply" in result.output


def test_an_empty_path_plans_nothing(mimctl, db, tmp_path) -> None:
    assert mimctl("--db", db, "reconcile", "--apply", EXAMPLES / "quickstart", "--yes").exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    result = mimctl("--db", db, "reconcile", "--apply", empty, "--yes")
    assert result.exit_code == 1 and "no *.yaml or *.yml files under" in result.output
    assert mimctl("--db", db, "reconcile", "--plan", EXAMPLES / "quickstart").exit_code == 0


def test_a_saved_plan_is_only_applied_to_its_own_database(mimctl, db, tmp_path) -> None:
    saved = tmp_path / "plan.json"
    assert mimctl("--db", db, "reconcile", "--plan", EXAMPLES / "quickstart",
                  "--out", saved).exit_code == 2
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    result = mimctl("--db", other, "reconcile", "--apply", saved)
    assert result.exit_code == 1 and "make a plan against this database" in result.output
    data = json.loads(saved.read_text())
    data["operations"][0]["document"]["spec"]["bogus"] = 1
    saved.write_text(json.dumps(data))
    tampered = mimctl("--db", db, "reconcile", "--apply", saved)
    assert tampered.exit_code == 1 and "is not a mimctl plan file" in tampered.output
