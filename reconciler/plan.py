"""A plan: ordered operations, stamped with the state they were computed against.

Creates and updates go parents first (the kind order of `specs.KINDS`), deletes children first.
Guards run here, before anything is applied: deleting a protected object, or more objects than
`max_deletes`, fails the plan with a message that says how to proceed.

The JSON form (format_version 1) is both the `--format json` rendering and the saved plan
file `reconcile --apply FILE` executes exactly. A secret appears in a document only as its keyed
fingerprint (`{"sensitive": ...}`); `secrets` lists where apply reads each one again — an
environment variable, an absolute file path, or the sealed value the spec holds (ciphertext
only the deployment's private key opens, as safe as the git repository it comes from):

    {"format_version": 1, "plan_id", "created_at", "database", "state_fingerprint",
     "source": {"path", "git_commit"}, "summary": {"create", "update", "adopt", "delete"},
     "operations": [{"action": "create|update|adopt|delete", "kind", "name",
                     "expected"?, "changes"?: [{"op", "path", "old", "new"}],
                     "document"?, "source"?, "secrets"?, "protected"?, "pruned"?,
                     "request_status"?, "label"?}],
     "unmanaged": [{"kind", "name", "conflict"}]}
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.canonical import to_model
from reconciler.diff import (
    REQUEST,
    Adopt,
    Change,
    ChangeOp,
    Create,
    Delete,
    Operation,
    Unmanaged,
    Update,
)
from reconciler.errors import MimError
from reconciler.resolve import redacted
from specs import KINDS

FORMAT_VERSION = 1
DEFAULT_MAX_DELETES = 10
_KIND_ORDER = {kind: index for index, kind in enumerate(KINDS)}
ACTIONS: dict[type, str] = {Create: "create", Update: "update", Adopt: "adopt", Delete: "delete"}


class PlanError(MimError):
    """A plan that must not be applied as it stands; the message says how to proceed."""


@dataclass(slots=True)
class Plan:
    """Ordered operations and the state they were computed against."""

    operations: list[Operation]
    unmanaged: list[Unmanaged]
    state_fingerprint: str
    database: str = ""
    source_path: str = ""
    git_commit: str | None = None
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def effective(self) -> list[Operation]:
        """Operations apply carries out (deletes held back by --no-prune are only reported)."""
        return [op for op in self.operations if not (isinstance(op, Delete) and not op.pruned)]

    @property
    def has_changes(self) -> bool:
        return bool(self.effective)

    def summary(self) -> dict[str, int]:
        counts = Counter(ACTIONS[type(op)] for op in self.effective)
        return {action: counts.get(action, 0) for action in ACTIONS.values()}


def order(operations: Sequence[Operation]) -> list[Operation]:
    """Parents before children for writes; children before parents for deletes."""
    writes = [op for op in operations if not isinstance(op, Delete)]
    deletes = [op for op in operations if isinstance(op, Delete)]
    writes.sort(key=lambda op: (_KIND_ORDER[op.kind], op.name))
    deletes.sort(key=lambda op: (-_KIND_ORDER[op.kind], op.name))
    return [*writes, *deletes]


def make_plan(operations: Sequence[Operation], unmanaged: Sequence[Unmanaged], state_fingerprint: str,
              **stamp: Any) -> Plan:
    unmanaged = sorted(unmanaged, key=lambda u: (_KIND_ORDER[u.kind], u.name))
    return Plan(order(operations), unmanaged, state_fingerprint, **stamp)


def guard_problems(plan: Plan, max_deletes: int = DEFAULT_MAX_DELETES) -> list[str]:
    """Why the plan must not be applied as it stands (empty when it may be)."""
    problems = []
    deletes = [op for op in plan.effective if isinstance(op, Delete) and op.cancels]
    protected = [op for op in deletes if op.protected]
    if protected:
        names = ", ".join(f"{op.kind}/{op.name}" for op in protected)
        problems.append(
            f"the plan deletes protected objects: {names}. Keep their documents, or lift the "
            f"protection first with `mimctl unprotect KIND/NAME` (e.g. mimctl unprotect "
            f"{protected[0].kind}/{protected[0].name})")
    if len(deletes) > max_deletes:
        problems.append(
            f"the plan deletes {len(deletes)} objects, more than --max-deletes {max_deletes}. "
            "Check that no documents went missing; if the deletions are intended, run again "
            f"with --max-deletes {len(deletes)}, or with --no-prune to leave them")
    conflicts = [u for u in plan.unmanaged if u.conflict]
    if conflicts:
        names = ", ".join(f"{u.kind}/{u.name}" for u in conflicts)
        problems.append(f"objects created outside the specs have the names of documents: "
                        f"{names}. Run with --adopt to take them under management")
    return problems


# ---------------------------------------------------------------------------------------------
# JSON form

def _operation_json(op: Operation) -> dict[str, Any]:
    data: dict[str, Any] = {"action": ACTIONS[type(op)], "kind": op.kind, "name": op.name}
    if isinstance(op, (Update, Adopt, Delete)):
        data["expected"] = op.expected
    if isinstance(op, (Update, Adopt)):
        data["changes"] = [{"op": c.op.value, "path": c.path, "old": redacted(c.old),
                            "new": redacted(c.new)} for c in op.changes]
    if isinstance(op, (Create, Update, Adopt)):
        data["document"] = op.document
        data["source"] = op.source
        if op.secrets:
            data["secrets"] = op.secrets
    if isinstance(op, Delete):
        data["protected"] = op.protected
        data["pruned"] = op.pruned
        if op.kind == REQUEST:
            data["request_status"] = op.request_status
            data["label"] = op.label
    return data


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "plan_id": plan.plan_id,
        "created_at": plan.created_at,
        "database": plan.database,
        "state_fingerprint": plan.state_fingerprint,
        "source": {"path": plan.source_path, "git_commit": plan.git_commit},
        "summary": plan.summary(),
        "operations": [_operation_json(op) for op in plan.operations],
        "unmanaged": [{"kind": u.kind, "name": u.name, "conflict": u.conflict}
                      for u in plan.unmanaged],
    }


def _operation_from_json(data: dict[str, Any]) -> Operation:
    action, kind, name = data["action"], data["kind"], data["name"]
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    changes = tuple(Change(ChangeOp(c["op"]), c["path"], c.get("old"), c.get("new"))
                    for c in data.get("changes", ()))
    secrets = data.get("secrets", {})
    if action == "create":
        return Create(kind, name, data["document"], data.get("source", ""), secrets)
    if action == "update":
        return Update(kind, name, data["expected"], changes, data["document"],
                      data.get("source", ""), secrets)
    if action == "adopt":
        return Adopt(kind, name, data["expected"], changes, data["document"],
                     data.get("source", ""), secrets)
    if action == "delete":
        return Delete(kind, name, data["expected"], bool(data.get("protected")),
                      bool(data.get("pruned", True)), data.get("request_status"),
                      data.get("label", ""))
    raise ValueError(f"unknown action {action!r}")


def plan_from_json(data: dict[str, Any]) -> Plan:
    if data.get("format_version") != FORMAT_VERSION:
        raise PlanError(f"plan format_version {data.get('format_version')!r} is not "
                        f"{FORMAT_VERSION}; make the plan again with this mimctl")
    return Plan(
        operations=[_operation_from_json(op) for op in data["operations"]],
        unmanaged=[Unmanaged(u["kind"], u["name"], bool(u.get("conflict")))
                   for u in data.get("unmanaged", [])],
        state_fingerprint=data["state_fingerprint"],
        database=data.get("database", ""),
        source_path=data.get("source", {}).get("path", ""),
        git_commit=data.get("source", {}).get("git_commit"),
        plan_id=data["plan_id"],
        created_at=data["created_at"],
    )


def read_plan_file(path: Path) -> Plan:
    """A saved plan; a damaged or foreign file is refused with a clear message."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        plan = plan_from_json(data)
        for op in plan.operations:  # an edited file must not reach the database half-valid
            if not isinstance(op, Delete):
                to_model(op.kind, op.name, op.document)
        return plan
    except PlanError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PlanError(f"{path} is not a mimctl plan file ({error}); save one with "
                        "`mimctl reconcile --plan --out FILE`") from error
