"""Property: after applying any valid spec set, from any earlier state, a plan shows no changes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply import apply_plan
from reconciler.reconcile import plan_path
from reconciler.yamlnodes import dump_documents
from specs.role import WORKFLOWS

ROLE_NAMES = ["Alpha", "Beta", "Gamma Team", "Delta"]
PEOPLE = ["ann", "ben", "cat", "dan", "eve"]
POLICIES = ["p-sign", "p-auth", "p-enc"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
               min_size=1, max_size=16)


def document(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "mim/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@st.composite
def spec_sets(draw) -> list[dict]:  # noqa: ANN001
    roles = draw(st.lists(st.sampled_from(ROLE_NAMES), unique=True, min_size=1))
    some_roles = st.lists(st.sampled_from(roles), unique=True)
    documents = [document("Role", role, {
        "workflows": draw(st.lists(st.sampled_from(WORKFLOWS), unique=True, max_size=4)),
        "scope": draw(st.sampled_from(["Self", "Department", "Division", "All"])),
        **({"description": draw(TEXT)} if draw(st.booleans()) else {}),
    }) for role in roles]
    for name in draw(st.lists(st.sampled_from(PEOPLE), unique=True)):
        spec = {"fullName": draw(TEXT), "roles": draw(some_roles)}
        if draw(st.booleans()):
            spec["email"] = f"{name}@example.com"
        if draw(st.booleans()):
            spec["attributes"] = {"Xu55": draw(TEXT)}
        documents.append(document("Person", name, spec))
    documents.append(document("CertificateAuthority", "ca", {"subject": "CN=CA"}))
    policies = draw(st.lists(st.sampled_from(POLICIES), unique=True, min_size=1))
    for policy in policies:
        documents.append(document("CertificatePolicy", policy, {
            "friendlyName": policy.upper(), "authority": "ca",
            "keySize": draw(st.sampled_from([2048, 3072, 4096])),
            "validityDays": draw(st.integers(1, 3650)),
        }))
    for index in range(draw(st.integers(0, 3))):
        chosen = draw(st.lists(st.sampled_from(policies), unique=True, min_size=1))
        documents.append(document("CredentialProfile", f"profile-{index}", {
            "certificates": [{"policy": p, "archived": draw(st.booleans())} for p in chosen],
            "roles": {"canReceive": draw(some_roles), "canCollect": draw(some_roles)},
            "issuance": {"notificationScheme": draw(st.sampled_from(
                ["Default", "None", "MobileOnlyAuthCodeViaEmail", "MobileOnlyAuthCodeViaSms"]))},
        }))
    return documents


def converge(engine, documents: list[dict]) -> None:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "specs.yaml").write_text(dump_documents(documents), encoding="utf-8")
        planned = plan_path(Path(folder), engine, rules=False)  # the engine, not the rules
        assert planned.plan is not None, [str(p) for p in planned.report.problems]
        apply_plan(engine, planned.plan, actor="property", check_state=True)
        again = plan_path(Path(folder), engine, rules=False)
        assert again.plan is not None
        assert again.plan.operations == [], [str(op) for op in again.plan.operations]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(first=spec_sets(), second=spec_sets())
def test_apply_then_plan_shows_no_changes(engine, first, second) -> None:
    converge(engine, first)
    converge(engine, second)  # from the first state: creates, updates and deletes
