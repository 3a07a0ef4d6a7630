"""The plan as terminal text: a summary line, then one block per operation, in plan order.

Each operation type has its own renderer, registered on `operation_lines` (a visitor, as in
alembic's autogenerate render): the renderer reads the operation and never recomputes the diff.
How a single value is shown, secrets included, is decided in one place: `display_value`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import singledispatch
from typing import Any

import click

from reconciler.diff import REQUEST, Adopt, Change, ChangeOp, Create, Delete, Unmanaged, Update
from reconciler.plan import Plan
from reconciler.resolve import SENSITIVE, SENSITIVE_CHANGED, is_sensitive, redacted

Paint = Callable[..., str]

MAX_VALUE_CHARS = 80
NO_CHANGES = "No changes. The database matches the specs."
NOTHING_TO_APPLY = "No changes to apply."
ADOPT_NOTE = "(adopt: take under management)"
PROTECTED_NOTE = "(protected)"
NOT_PRUNED_NOTE = "(not pruned: --no-prune)"
UNMANAGED_NOTE = "unmanaged, left alone"
CONFLICT_NOTE = "exists outside the specs; --adopt to take it over"

# The marker of a field-level change, and its colour.
CHANGE_MARKERS: dict[ChangeOp, tuple[str, str]] = {
    ChangeOp.ADD: ("+", "green"),
    ChangeOp.CHANGE: ("~", "yellow"),
    ChangeOp.REMOVE: ("-", "red"),
}


def display_value(value: Any) -> str:
    """How a field value is shown in a plan: compact, on one line, and never a secret.

    Strings are quoted, other values are compact JSON (`true`, `null`, `{"a": 1}`), and anything
    longer than MAX_VALUE_CHARS is cut with an ellipsis.
    """
    if is_sensitive(value):
        return SENSITIVE
    value = redacted(value)
    if isinstance(value, str):
        text = repr(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS - 1] + "…"
    return text


def change_lines(change: Change) -> list[tuple[str, str]]:
    """A field change as (marker, text) lines: `+ path: new`, `- path: old`, or one `~` line."""
    marker, _ = CHANGE_MARKERS[change.op]
    if change.op is ChangeOp.ADD:
        return [(marker, f"{change.path}: {display_value(change.new)}")]
    if change.op is ChangeOp.REMOVE:
        return [(marker, f"{change.path}: {display_value(change.old)}")]
    if is_sensitive(change.old) and is_sensitive(change.new):
        return [(marker, f"{change.path}: {SENSITIVE_CHANGED}")]
    shown = f"{display_value(change.old)} -> {display_value(change.new)}"
    return [(marker, f"{change.path}: {shown}")]


def summary_sentence(plan: Plan) -> str:
    """`Plan: 1 to create, ...` when something would change, else the no-change sentence."""
    if plan.has_changes:
        counts = ", ".join(f"{count} to {action}" for action, count in plan.summary().items())
        return f"Plan: {counts}."
    if plan.operations or any(row.conflict for row in plan.unmanaged):
        return NOTHING_TO_APPLY  # held-back deletes or name conflicts, reported below
    return NO_CHANGES


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# ---------------------------------------------------------------------------------------------
# One renderer per operation type

def _plain(text: str, **_style: Any) -> str:
    return text


def _head(marker: str, colour: str, kind: str, name: str, source: str, paint: Paint) -> str:
    head = f"{paint(marker, fg=colour, bold=True)} {kind}/{name}"
    return f"{head} {paint(f'({source})', dim=True)}" if source else head


def _changes(changes: tuple[Change, ...], paint: Paint) -> list[str]:
    lines = []
    for change in changes:
        colour = CHANGE_MARKERS[change.op][1]
        lines += [f"    {paint(marker, fg=colour)} {text}" for marker, text in change_lines(change)]
    return lines


@singledispatch
def operation_lines(operation: object, paint: Paint) -> list[str]:
    """The text lines of one plan row."""
    raise TypeError(f"no text rendering for {type(operation).__name__}")


@operation_lines.register
def _create(operation: Create, paint: Paint) -> list[str]:
    return [_head("+", "green", operation.kind, operation.name, operation.source, paint)]


@operation_lines.register
def _update(operation: Update, paint: Paint) -> list[str]:
    head = _head("~", "yellow", operation.kind, operation.name, operation.source, paint)
    return [head, *_changes(operation.changes, paint)]


@operation_lines.register
def _adopt(operation: Adopt, paint: Paint) -> list[str]:
    head = _head("=", "yellow", operation.kind, operation.name, operation.source, paint)
    return [f"{head}  {paint(ADOPT_NOTE, dim=True)}", *_changes(operation.changes, paint)]


@operation_lines.register
def _delete(operation: Delete, paint: Paint) -> list[str]:
    line = _head("-", "red", operation.kind, operation.name, "", paint)
    if operation.protected:
        line += f"  {paint(PROTECTED_NOTE, dim=True)}"
    if not operation.pruned:
        line += f"  {paint(NOT_PRUNED_NOTE, dim=True)}"
    return [line]


@operation_lines.register
def _unmanaged(row: Unmanaged, paint: Paint) -> list[str]:
    note = CONFLICT_NOTE if row.conflict else paint(UNMANAGED_NOTE, dim=True)
    colour = "red" if row.conflict else "yellow"
    return [f"{paint('!', fg=colour, bold=True)} {row.kind}/{row.name}  {note}"]


# ---------------------------------------------------------------------------------------------
# Requests: their own section, as intents rather than rows

REQUESTS_HEADING = "Requests:"
FULFILLED_NOTE = "(document removed; the mobile ID stays)"
CLOSED_NOTE = "(document removed; the request was canceled before)"


def is_request_row(operation: object) -> bool:
    return isinstance(operation, (Create, Delete)) and operation.kind == REQUEST


def request_row(operation: Create | Delete) -> tuple[str, str, str, str]:
    """(marker, colour, `request person/profile` text, note) of a request's plan row."""
    if isinstance(operation, Create):
        spec = operation.document["spec"]
        return "+", "green", f"request {spec['person']}/{spec['credentialProfile']}", ""
    if operation.cancels:
        return "-", "red", f"cancel {operation.label}", "" if operation.pruned else NOT_PRUNED_NOTE
    if operation.request_status == "collected":
        return "=", "cyan", f"fulfilled {operation.label}", FULFILLED_NOTE
    return "=", "cyan", f"closed {operation.label}", CLOSED_NOTE


def _request_lines(operation: Create | Delete, paint: Paint) -> list[str]:
    marker, colour, text, note = request_row(operation)
    line = f"{paint(marker, fg=colour, bold=True)} {text}  MobileRequest/{operation.name}"
    source = operation.source if isinstance(operation, Create) else ""
    for extra in (note, f"({source})" if source else ""):
        if extra:
            line += f" {paint(extra, dim=True)}"
    return [line]


def render_text(plan: Plan, *, color: bool = False) -> str:
    """The plan for a terminal; ANSI colour only when `color` is true."""
    paint: Paint = click.style if color else _plain
    lines = [summary_sentence(plan)]
    operations = [line for op in plan.operations if not is_request_row(op)
                  for line in operation_lines(op, paint)]
    requests = [line for op in plan.operations if is_request_row(op)
                for line in _request_lines(op, paint)]  # type: ignore[arg-type]
    unmanaged = [line for row in plan.unmanaged for line in operation_lines(row, paint)]
    for section in (operations, [REQUESTS_HEADING, *requests] if requests else [], unmanaged):
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"
