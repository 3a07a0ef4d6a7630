"""The reconcile pipeline end to end: load -> validate -> resolve secrets -> read state -> diff -> plan.

This is the one place that joins the pure steps to the database; `apply.py` carries plans out.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from reconciler.db.engine import ensure_schema
from reconciler.diff import REQUEST, Adopt, Operation, Update, diff
from reconciler.errors import Problem
from reconciler.load import paused_gc
from reconciler.plan import Plan, make_plan
from reconciler.resolve import SecretResolver, desired_documents
from reconciler.state import read_state
from reconciler.validate import Report, validate


@dataclass(slots=True)
class Planned:
    """A validation report and, when the specs are valid, the plan."""

    report: Report
    plan: Plan | None


def git_commit(path: Path) -> str | None:
    """The commit the specs at `path` come from (`-dirty` when they differ from it), or None."""
    folder = path if path.is_dir() else path.parent
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                              check=False, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--", "."],
                               check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def edited_requests(report: Report, operations: list[Operation]) -> Iterator[Problem]:
    """A request is an intent, not a setting: once applied it is not edited, but replaced."""
    for op in operations:
        if op.kind != REQUEST or not isinstance(op, (Update, Adopt)):
            continue
        document = report.catalog.by_kind[REQUEST][op.name]
        fields = ", ".join(change.path for change in op.changes) or "its document"
        yield Problem(document.source.file, document.source.line, document.source.column,
                      f"an applied request cannot be edited ({fields} changed): remove its "
                      "document and apply to cancel it, then request again under a new name",
                      REQUEST, op.name, code="request")


def plan_path(path: Path, engine: Engine, *, prune: bool = True, adopt: bool = False,
              rules: bool = True) -> Planned:
    """Validate the specs under `path` and, if they are valid, plan them against the database."""
    with paused_gc():
        report = validate(path, rules=rules)
        if not report.ok:
            return Planned(report, None)
        desired, problems = desired_documents(
            report.catalog.documents,
            SecretResolver(engine.url.render_as_string(hide_password=False)))
        if problems:
            report.problems = sorted([*report.problems, *problems], key=Problem.sort_key)
            return Planned(report, None)
        ensure_schema(engine)
        with engine.connect() as connection:
            state = read_state(connection)
        operations, unmanaged = diff(desired, state, prune=prune, adopt=adopt)
        edits = list(edited_requests(report, operations))
        if edits:
            report.problems = sorted([*report.problems, *edits], key=Problem.sort_key)
            return Planned(report, None)
    plan = make_plan(operations, unmanaged, state.fingerprint,
                     database=engine.url.render_as_string(hide_password=True),
                     source_path=str(path), git_commit=git_commit(path))
    return Planned(report, plan)
