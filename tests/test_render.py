"""Plan renderings (text, json, markdown): snapshots of one plan with every kind of row."""

from __future__ import annotations

import json
import re

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from reconciler.canonical import digest
from reconciler.diff import (
    Adopt,
    Change,
    ChangeOp,
    Create,
    Delete,
    Operation,
    Unmanaged,
    Update,
)
from reconciler.plan import Plan, make_plan, plan_from_json, plan_to_json
from reconciler.render import FORMATS, display_value, render
from reconciler.render.markdown import render_markdown

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SEALED = "enc:v1:QmFzZTY0Q2lwaGVydGV4dA=="


class TextSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "txt"


class MarkdownSnapshot(TextSnapshot):
    file_extension = "md"


class JsonSnapshot(TextSnapshot):
    file_extension = "json"


def document(spec: dict[str, object], **labels: str) -> dict[str, object]:
    return {"metadata": {"labels": labels, "annotations": {}}, "spec": spec}


PROFILE_BEFORE = document({
    "cardFormat": "Mobile",
    "certificates": [{"policy": "device-signing", "container": "System Store",
                      "mode": "IssueNew", "archived": False}],
    "cardLayouts": [],
    "roles": {"canReceive": ["Employee"], "canUnlock": ["Helpdesk"]},
})
PROFILE_AFTER = document({
    "cardFormat": "Mobile",
    "certificates": [{"policy": "device-signing", "container": "Signing",
                      "mode": "IssueNew", "archived": False}],
    "cardLayouts": ["Corp Badge"],
    "roles": {"canReceive": ["Employee"], "canUnlock": []},
})
SIGNING_CONTAINER = {"name": "Signing", "id": "2", "certificate": True, "explicit": True,
                     "unique": True, "preserveContainerForHistoric": True}
CARD_FORMAT = document({
    "description": "Corporate mobile ID",
    "containers": [
        {"name": "System Store", "id": "1", "certificate": True, "explicit": False,
         "unique": True, "preserveContainerForHistoric": False},
        SIGNING_CONTAINER,
    ],
}, team="pki")


def snapshot_plan() -> Plan:
    """Creates, updates, adopts, deletes (protected and held back) and unmanaged rows."""
    operations: list[Operation] = [
        Update("CredentialProfile", "mobile-standard", digest(PROFILE_BEFORE), (
            Change(ChangeOp.ADD, "spec.cardLayouts[0]", None, "Corp Badge"),
            Change(ChangeOp.CHANGE, "spec.certificates[0].container", "System Store", "Signing"),
            Change(ChangeOp.REMOVE, "spec.roles.canUnlock[0]", "Helpdesk", None),
        ), PROFILE_AFTER, "specs/profiles/mobile-standard.yaml:1:1"),
        Create("Role", "Badge Operator",
               document({"workflows": ["Collect My Updates", "Unlock Credential"],
                         "logonMechanisms": ["Password"], "scope": "Self"}),
               "specs/roles.yaml:12:1"),
        Adopt("CardFormat", "Corp Mobile", "9" * 64, (
            Change(ChangeOp.ADD, "metadata.labels.team", None, "pki"),
            Change(ChangeOp.ADD, "spec.containers[1]", None, SIGNING_CONTAINER),
            Change(ChangeOp.CHANGE, "spec.description", "", "Corporate mobile ID"),
        ), CARD_FORMAT, "specs/card-formats.yaml:1:1"),
        Delete("CardLayout", "Visitor Badge", "a" * 64, protected=True),
        Delete("Role", "Contractor", "b" * 64, pruned=False),
    ]
    unmanaged = [Unmanaged("DnPolicy", "legacy-default", conflict=True),
                 Unmanaged("Person", "jdoe")]
    return make_plan(operations, unmanaged, "f" * 64, database="sqlite:///mim.sqlite3",
                     source_path="specs", git_commit="0123456789abcdef0123456789abcdef01234567",
                     plan_id="00000000000000000000000000000001",
                     created_at="2025-01-02T03:04:05+00:00")


def empty_plan() -> Plan:
    return make_plan([], [], "e" * 64, plan_id="0" * 32, created_at="2025-01-02T03:04:05+00:00")


def test_text(snapshot) -> None:
    assert render(snapshot_plan(), "text") == snapshot(extension_class=TextSnapshot)


def test_json(snapshot) -> None:
    assert render(snapshot_plan(), "json") == snapshot(extension_class=JsonSnapshot)


def test_markdown(snapshot) -> None:
    assert render(snapshot_plan(), "markdown") == snapshot(extension_class=MarkdownSnapshot)


def test_json_is_the_plan_file_form() -> None:
    plan = snapshot_plan()
    data = json.loads(render(plan, "json"))
    assert data == plan_to_json(plan)
    assert plan_to_json(plan_from_json(data)) == data


def test_formats_and_unknown_format() -> None:
    assert FORMATS == ("text", "json", "markdown")
    with pytest.raises(ValueError, match="unknown plan format 'yaml'; use one of text, json"):
        render(empty_plan(), "yaml")


def test_no_changes() -> None:
    assert render(empty_plan(), "text") == "No changes. The database matches the specs.\n"
    assert render(empty_plan(), "markdown") == (
        "### mimctl plan\n\nNo changes. The database matches the specs.\n")


def test_held_back_deletes_are_not_changes() -> None:
    plan = make_plan([Delete("Role", "Contractor", "b" * 64, pruned=False)], [], "e" * 64)
    assert render(plan, "text") == (
        "No changes to apply.\n\n- Role/Contractor  (not pruned: --no-prune)\n")


def test_color_only_when_asked() -> None:
    plan = snapshot_plan()
    coloured = render(plan, "text", color=True)
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured) == render(plan, "text")
    for fmt in FORMATS:
        assert not ANSI.search(render(plan, fmt))
        assert not ANSI.search(render(plan, fmt, color=fmt != "text"))


def test_markdown_truncated_keeps_the_table() -> None:
    operations: list[Operation] = [
        Update("Role", f"role-{index:02}", "c" * 64,
               (Change(ChangeOp.CHANGE, "spec.scope", "Self", "All"),),
               document({"scope": "All"}))
        for index in range(20)
    ]
    plan = make_plan(operations, [Unmanaged("Person", "jdoe")], "e" * 64)
    assert len(render(plan, "markdown")) > 1000

    shown = render_markdown(plan, max_chars=1000)

    assert len(shown) <= 1000
    assert shown.startswith("### mimctl plan\n\n| Action | Count |\n")
    assert "| Update | 20 |\n" in shown
    assert "| Unmanaged | 1 |\n" in shown
    details = shown.count("<details>")
    assert 0 < details < 20
    assert shown.endswith(
        f"\n\n… {20 - details} more operations and 1 unmanaged object not shown; "
        "run mimctl reconcile --plan locally for the full plan.\n")


def test_markdown_table_survives_a_tiny_limit() -> None:
    plan = snapshot_plan()
    shown = render_markdown(plan, max_chars=10)
    assert "| Delete | 1 |\n| Unmanaged | 2 |\n\n… 5 more operations and 2 unmanaged" in shown


def test_secrets_are_never_shown() -> None:
    intune = document({"tenantId": "contoso", "clientSecret": SEALED})
    plan = make_plan([
        Create("ExternalSystem", "Intune", intune, "specs/mdm.yaml:1:1"),
        Update("ExternalSystem", "WorkspaceOne", "d" * 64, (
            Change(ChangeOp.CHANGE, "spec.keyValue", SEALED, SEALED + "x"),
            Change(ChangeOp.CHANGE, "spec.password", {"env": "WS1_PASSWORD"},
                   {"sealed": SEALED}),
            Change(ChangeOp.ADD, "spec.auth", None, {"user": "svc", "password": SEALED}),
        ), document({}), "specs/mdm.yaml:20:1"),
    ], [], "e" * 64)

    for fmt in ("text", "markdown"):
        shown = render(plan, fmt)
        assert "enc:v1:" not in shown
        assert "(sensitive)" in shown
    text = render(plan, "text")
    assert "~ spec.keyValue: (sensitive value changed)" in text
    assert """~ spec.password: {"env": "WS1_PASSWORD"} -> (sensitive)""" in text
    assert """+ spec.auth: {"user": "svc", "password": "(sensitive)"}""" in text
    assert "+ spec.clientSecret: (sensitive)" in render(plan, "markdown")


@pytest.mark.parametrize(("value", "shown"), [
    ("System Store", "'System Store'"),
    (True, "true"),
    (None, "null"),
    (3, "3"),
    (["a", 1], '["a", 1]'),
    ({"sealed": SEALED}, "(sensitive)"),
    ("x" * 100, "'" + "x" * 78 + "…"),
])
def test_display_value(value: object, shown: str) -> None:
    assert display_value(value) == shown
