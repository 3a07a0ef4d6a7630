"""The reconcile engine against a real database (SQLite, or PostgreSQL via MIM_TEST_DATABASE_URL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select, text, update

from reconciler.apply import ApplyError, RowChangedError, StalePlanError, apply_plan, unprotect
from reconciler.db.audit import verify
from reconciler.db.engine import SchemaError, ensure_schema, make_engine
from reconciler.db.models import KIND_TABLES, MANAGED_BY_HAND, audit_events
from reconciler.diff import Adopt, Create, Delete, Update
from reconciler.plan import guard_problems, plan_from_json, plan_to_json
from reconciler.reconcile import plan_path
from reconciler.state import read_state
from tests.conftest import EXAMPLES

ROLE = """
apiVersion: mim/v1
kind: Role
metadata: {name: PasswordUser}
spec:
  workflows: [Collect My Updates, Issue Device]
"""


def person(name: str, email: str | None = None, roles: str = "[PasswordUser]") -> str:
    return f"""
apiVersion: mim/v1
kind: Person
metadata: {{name: {name}}}
spec:
  fullName: {name.title()} Example
  email: {email or name + '@example.com'}
  roles: {roles}
"""


def people_files(count: int, per_file: int = 50) -> dict[str, str]:
    files = {"roles.yaml": ROLE}
    names = [f"user{index:05d}" for index in range(count)]
    for start in range(0, count, per_file):
        files[f"people/{start:05d}.yaml"] = "---".join(person(n) for n in names[start:start + per_file])
    return files


def apply_path(engine, path: Path, **options):
    planned = plan_path(path, engine, **options)
    assert planned.plan is not None, [str(p) for p in planned.report.problems]
    assert guard_problems(planned.plan, options.get("max_deletes", 10)) == []
    apply_plan(engine, planned.plan, actor="test", check_state=True)
    return planned.plan


def plan_of(engine, path: Path, **options):
    planned = plan_path(path, engine, **options)
    assert planned.plan is not None, [str(p) for p in planned.report.problems]
    return planned.plan


def actions(plan) -> list[tuple[str, str, str]]:
    return [(type(op).__name__, op.kind, op.name) for op in plan.effective]


@pytest.mark.parametrize("example", ["quickstart", "intune-derived-credentials"])
def test_apply_then_plan_shows_no_changes(engine, example) -> None:
    first = apply_path(engine, EXAMPLES / example)
    assert first.has_changes and all(isinstance(op, Create) for op in first.operations)
    again = plan_of(engine, EXAMPLES / example)
    assert again.operations == [] and again.unmanaged == []
    with engine.connect() as connection:
        assert verify(connection) == []
        events = connection.execute(select(func.count()).select_from(audit_events)).scalar()
        generated = connection.execute(select(audit_events.c.action).where(
            audit_events.c.action.in_(["ca-generate", "content-signer-issue"]))).scalars().all()
    opened = sum(op.kind == "MobileRequest" for op in first.operations)  # + request-open
    authorities = sum(op.kind == "CertificateAuthority" for op in first.operations)
    assert generated.count("ca-generate") == authorities  # every example CA is generated
    assert events == len(first.operations) + opened + len(generated)


def test_creates_go_parents_first_and_references_are_real_rows(engine) -> None:
    plan = plan_of(engine, EXAMPLES / "quickstart")
    kinds = [op.kind for op in plan.operations]
    assert kinds.index("Role") < kinds.index("Person") < kinds.index("MobileRequest")
    assert kinds.index("CertificatePolicy") < kinds.index("CredentialProfile")
    apply_plan(engine, plan, actor="test")
    with engine.connect() as connection:
        grants = connection.execute(text(
            "SELECT r.source_kind, r.path, roles.name FROM ref_roles r "
            "JOIN roles ON roles.id = r.target_id ORDER BY r.source_kind, r.path")).all()
    assert ("CredentialProfile", "spec.roles.canReceive[0]", "PasswordUser") in grants
    assert ("Person", "spec.roles[0]", "PasswordUser") in grants


def test_update_shows_nested_field_paths(engine, write_tree) -> None:
    root = write_tree({})
    shutil.copytree(EXAMPLES / "quickstart", root, dirs_exist_ok=True)
    apply_path(engine, root)
    profiles = root / "profiles.yaml"
    profiles.write_text(profiles.read_text().replace("policy: mobile-signing\n      container: System Store",
                                                     "policy: mobile-signing"))
    plan = plan_of(engine, root)
    (op,) = plan.operations
    assert isinstance(op, Update) and op.name == "mobile-standard"
    assert op.changes == (("change", "spec.certificates[0].container", "System Store", None),)


def test_drift_is_shown_and_put_back(engine) -> None:
    apply_path(engine, EXAMPLES / "quickstart")
    people = KIND_TABLES["Person"].table
    with engine.begin() as connection:
        connection.execute(update(people).where(people.c.name == "alice")
                           .values(email="mallory@evil.example"))
    plan = plan_of(engine, EXAMPLES / "quickstart")
    (op,) = plan.operations
    assert isinstance(op, Update) and (op.kind, op.name) == ("Person", "alice")
    assert op.changes == (("change", "spec.email", "mallory@evil.example", "alice@example.com"),)
    apply_plan(engine, plan, actor="test")
    assert plan_of(engine, EXAMPLES / "quickstart").operations == []
    with engine.connect() as connection:
        view = connection.execute(text(
            'SELECT "Email" FROM v_people_user_accounts WHERE "LogonName" = \'alice\'')).scalar()
    assert view == "alice@example.com"


def test_removed_document_is_deleted_or_only_reported_without_prune(engine, write_tree) -> None:
    root = write_tree(people_files(3))
    apply_path(engine, root)
    (root / "people/00000.yaml").write_text("---".join(person(n) for n in ("user00000", "user00001")))
    kept = plan_of(engine, root, prune=False)
    (held,) = kept.operations
    assert isinstance(held, Delete) and not held.pruned and not kept.has_changes
    plan = plan_of(engine, root)
    assert actions(plan) == [("Delete", "Person", "user00002")]
    apply_plan(engine, plan, actor="test")
    with engine.connect() as connection:
        assert sorted(read_state(connection).objects) == [
            ("Person", "user00000"), ("Person", "user00001"), ("Role", "PasswordUser")]


def _insert_by_hand(engine, kind: str, name: str, document: dict) -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    table = KIND_TABLES[kind].table
    with engine.begin() as connection:
        connection.execute(insert(table).values(
            name=name, managed_by=MANAGED_BY_HAND, protected=False, generation=1,
            document=document, created_at=now, updated_at=now))


def test_unmanaged_rows_are_left_alone_unless_adopted(engine, write_tree) -> None:
    root = write_tree({"roles.yaml": ROLE})
    apply_path(engine, root)
    legacy = {"metadata": {"labels": {}, "annotations": {}},
              "spec": {"description": "by hand", "workflows": [], "logonMechanisms": ["Password"],
                       "scope": "All"}}
    _insert_by_hand(engine, "Role", "Legacy", legacy)
    plan = plan_of(engine, root)
    assert plan.operations == [] and [(u.name, u.conflict) for u in plan.unmanaged] == [
        ("Legacy", False)]

    (root / "legacy.yaml").write_text(
        "apiVersion: mim/v1\nkind: Role\nmetadata: {name: Legacy}\nspec: {scope: All}\n")
    conflicting = plan_of(engine, root)
    (problem,) = guard_problems(conflicting)
    assert "Role/Legacy" in problem and "--adopt" in problem

    adopted = plan_of(engine, root, adopt=True)
    (op,) = adopted.operations
    assert isinstance(op, Adopt) and ("change", "spec.description", "by hand", None) in op.changes
    apply_plan(engine, adopted, actor="test")
    assert plan_of(engine, root).operations == []
    (root / "legacy.yaml").unlink()
    assert actions(plan_of(engine, root)) == [("Delete", "Role", "Legacy")]


def test_protected_object_cannot_be_deleted_until_unprotected(engine, write_tree) -> None:
    ca = ("apiVersion: mim/v1\nkind: CertificateAuthority\nmetadata:\n  name: root-ca\n"
          "  annotations: {mim/protect: \"true\"}\nspec: {subject: CN=Root}\n")
    root = write_tree({"roles.yaml": ROLE, "ca.yaml": ca})
    apply_path(engine, root)
    (root / "ca.yaml").unlink()
    plan = plan_of(engine, root)
    (problem,) = guard_problems(plan)
    assert problem.startswith("the plan deletes protected objects: CertificateAuthority/root-ca.")
    assert "mimctl unprotect CertificateAuthority/root-ca" in problem
    unprotect(engine, "CertificateAuthority", "root-ca", actor="test")
    plan = plan_of(engine, root)
    assert guard_problems(plan) == []
    assert actions(plan) == [("Delete", "CertificateAuthority", "root-ca")]


def test_too_many_deletes_fail_the_plan(engine, write_tree) -> None:
    root = write_tree(people_files(12))
    apply_path(engine, root)
    shutil.rmtree(root / "people")
    plan = plan_of(engine, root)
    (problem,) = guard_problems(plan, max_deletes=10)
    assert problem.startswith("the plan deletes 12 objects, more than --max-deletes 10.")
    assert "--max-deletes 12" in problem and "--no-prune" in problem
    assert guard_problems(plan, max_deletes=12) == []


def test_saved_plan_round_trips_and_a_stale_one_is_refused(engine, write_tree) -> None:
    root = write_tree(people_files(2))
    saved = plan_from_json(plan_to_json(plan_of(engine, root)))
    assert actions(saved) == actions(plan_of(engine, root))
    other = write_tree({"roles.yaml": ROLE})  # another apply lands first
    apply_path(engine, other)
    with pytest.raises(StalePlanError, match="database changed since this plan was made"):
        apply_plan(engine, saved, actor="test", check_state=True)


def test_a_row_changed_since_planning_is_named(engine, write_tree) -> None:
    root = write_tree(people_files(2))
    apply_path(engine, root)
    (root / "people/00000.yaml").write_text(
        "---".join([person("user00000", "new@example.com"), person("user00001")]))
    plan = plan_of(engine, root)
    people = KIND_TABLES["Person"].table
    with engine.begin() as connection:
        connection.execute(update(people).where(people.c.name == "user00000").values(cell="123"))
    with pytest.raises(RowChangedError, match="Person/user00000 changed since the plan was made"):
        apply_plan(engine, plan, actor="test", check_state=False)


def test_deleting_an_object_still_used_outside_the_plan_is_refused(engine, write_tree) -> None:
    root = write_tree({"roles.yaml": ROLE, "extra.yaml": ROLE.replace("PasswordUser", "Extra")})
    apply_path(engine, root)
    _insert_by_hand(engine, "Person", "handmade", {
        "metadata": {"labels": {}, "annotations": {}},
        "spec": {"fullName": "Hand Made", "roles": ["Extra"]}})
    # Reference rows for a hand-made object are what the service or an admin would write.
    with engine.begin() as connection:
        people_id = connection.execute(text("SELECT id FROM people WHERE name='handmade'")).scalar()
        role_id = connection.execute(text("SELECT id FROM roles WHERE name='Extra'")).scalar()
        connection.execute(text("INSERT INTO ref_roles VALUES ('Person', :s, 'spec.roles[0]', :t)"),
                           {"s": people_id, "t": role_id})
    (root / "extra.yaml").unlink()
    plan = plan_of(engine, root)
    with pytest.raises(ApplyError, match=r"cannot delete Role/Extra: Person/handmade still uses it"):
        apply_plan(engine, plan, actor="test")
    with engine.connect() as connection:
        assert ("Role", "Extra") in read_state(connection).objects


def test_unmigrated_and_outdated_databases_are_refused(database_url, tmp_path) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE unrelated (id INTEGER)")
    with pytest.raises(SchemaError, match=r"has no mimctl schema; run `mimctl db upgrade`"):
        ensure_schema(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('0000')")
    with pytest.raises(SchemaError, match=r"revision 0000, this mimctl needs 0008; run `mimctl db upgrade`"):
        ensure_schema(engine)
    engine.dispose()


def test_state_reading_costs_the_same_queries_for_5_or_200_objects(engine, write_tree, tmp_path) -> None:
    def count_queries(path: Path) -> int:
        apply_path(engine, path)
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            plan_of(engine, path)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(statements)

    small = count_queries(write_tree(people_files(5)))
    large_root = tmp_path / "large"
    for relative, body in people_files(200).items():
        (large_root / relative).parent.mkdir(parents=True, exist_ok=True)
        (large_root / relative).write_text(body)
    large = count_queries(large_root)
    assert small == large
    assert large <= 2 * len(KIND_TABLES) + 5


def test_dropping_the_annotation_does_not_lift_protection(engine, write_tree) -> None:
    ca = ("apiVersion: mim/v1\nkind: CertificateAuthority\nmetadata:\n  name: root-ca\n"
          "  annotations: {mim/protect: \"true\"}\nspec: {subject: CN=Root}\n")
    root = write_tree({"roles.yaml": ROLE, "ca.yaml": ca})
    apply_path(engine, root)
    (root / "ca.yaml").write_text(ca.replace('  annotations: {mim/protect: "true"}\n', ""))
    apply_path(engine, root)
    (root / "ca.yaml").unlink()
    (problem,) = guard_problems(plan_of(engine, root))
    assert "CertificateAuthority/root-ca" in problem and "unprotect" in problem
