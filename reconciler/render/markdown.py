"""The plan as Markdown, made to be pasted as a pull-request comment.

A heading, a table of counts, then one collapsible block per operation with its field changes
as a `diff` code block (deletes and unmanaged rows are single lines). GitHub refuses comments
over 65,536 characters, so the output stays within `MAX_CHARS`: the table always, then as many
operations as fit, then a line saying how many were left out.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from functools import singledispatch
from itertools import pairwise
from typing import Any

from reconciler.diff import Adopt, Change, ChangeOp, Create, Delete, Unmanaged, Update
from reconciler.errors import format_path
from reconciler.plan import Plan
from reconciler.render.text import (
    ADOPT_NOTE,
    CONFLICT_NOTE,
    NO_CHANGES,
    NOT_PRUNED_NOTE,
    PROTECTED_NOTE,
    REQUESTS_HEADING,
    UNMANAGED_NOTE,
    change_lines,
    display_value,
    is_request_row,
    is_sensitive,
    plural,
    request_row,
)

MAX_CHARS = 60_000
HEADING = "### mimctl plan"
FULL_PLAN_HINT = "run mimctl reconcile --plan locally for the full plan."


def _fields(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str, Any]]:
    """A document flattened to (field path, leaf value) pairs; a secret is one leaf, and an
    empty map or list, which holds nothing to review, is left out."""
    if isinstance(value, dict) and not is_sensitive(value):
        for key, item in value.items():
            yield from _fields(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _fields(item, (*path, index))
    else:
        yield format_path(path), value


def _diff_change(change: Change) -> list[str]:
    """A field change as diff lines: a changed field is its old line then its new line."""
    if change.op is ChangeOp.CHANGE and not (is_sensitive(change.old)
                                             and is_sensitive(change.new)):
        return [f"- {change.path}: {display_value(change.old)}",
                f"+ {change.path}: {display_value(change.new)}"]
    return [f"{marker} {text}" for marker, text in change_lines(change)]


def _fence(lines: list[str]) -> str:
    """A ```diff block whose fence is longer than any backtick run inside it."""
    fence = "```"
    while any(fence in line for line in lines):
        fence += "`"
    return "\n".join([f"{fence}diff", *lines, fence])


def _details(summary: str, source: str, lines: list[str]) -> str:
    parts = [f"<details><summary>{html.escape(summary)}</summary>", ""]
    if source:
        parts += [f"Source: <code>{html.escape(source)}</code>", ""]
    return "\n".join([*parts, _fence(lines), "", "</details>"])


def _line(marker: str, kind: str, name: str, *notes: str) -> str:
    """A one-line row, as a list item (its marker in code so Markdown keeps it)."""
    return " ".join([f"- <code>{html.escape(f'{marker} {kind}/{name}')}</code>",
                     *(html.escape(note) for note in notes)])


# ---------------------------------------------------------------------------------------------
# One renderer per operation type

@singledispatch
def operation_block(operation: object) -> str:
    """The Markdown of one plan row."""
    raise TypeError(f"no Markdown rendering for {type(operation).__name__}")


@operation_block.register
def _create(operation: Create) -> str:
    lines = [f"+ {path}: {display_value(value)}" for path, value in _fields(operation.document)]
    summary = f"+ {operation.kind}/{operation.name} ({plural(len(lines), 'field')})"
    return _details(summary, operation.source, lines)


@operation_block.register
def _update(operation: Update) -> str:
    if not operation.changes:
        return _line("~", operation.kind, operation.name, "(no field changes)")
    lines = [line for change in operation.changes for line in _diff_change(change)]
    summary = f"~ {operation.kind}/{operation.name} ({plural(len(operation.changes), 'change')})"
    return _details(summary, operation.source, lines)


@operation_block.register
def _adopt(operation: Adopt) -> str:
    if not operation.changes:
        return _line("=", operation.kind, operation.name, ADOPT_NOTE)
    lines = [line for change in operation.changes for line in _diff_change(change)]
    count = plural(len(operation.changes), "change")
    summary = f"= {operation.kind}/{operation.name} ({count}) {ADOPT_NOTE}"
    return _details(summary, operation.source, lines)


@operation_block.register
def _delete(operation: Delete) -> str:
    notes = []
    if operation.protected:
        notes.append(PROTECTED_NOTE)
    if not operation.pruned:
        notes.append(NOT_PRUNED_NOTE)
    return _line("-", operation.kind, operation.name, *notes)


@operation_block.register
def _unmanaged(row: Unmanaged) -> str:
    return _line("!", row.kind, row.name, CONFLICT_NOTE if row.conflict else UNMANAGED_NOTE)


def _request_block(operation: Create | Delete) -> str:
    marker, _, text, note = request_row(operation)
    return " ".join([f"- <code>{html.escape(f'{marker} {text}')}</code>",
                     html.escape(f"MobileRequest/{operation.name}"),
                     *([html.escape(note)] if note else [])])


# ---------------------------------------------------------------------------------------------

def _table(plan: Plan) -> str:
    rows = [(action.capitalize(), count) for action, count in plan.summary().items()]
    rows.append(("Unmanaged", len(plan.unmanaged)))
    return "\n".join(["| Action | Count |", "|:--|--:|",
                      *(f"| {action} | {count} |" for action, count in rows)])


def _left_out(operations: int, unmanaged: int) -> str:
    parts = []
    if operations or not unmanaged:
        parts.append(f"{operations} more {'operation' if operations == 1 else 'operations'}")
    if unmanaged:
        parts.append(f"{unmanaged} {'more ' if not parts else ''}unmanaged "
                     f"{'object' if unmanaged == 1 else 'objects'}")
    return f"… {' and '.join(parts)} not shown; {FULL_PLAN_HINT}"


def _pieces(blocks: list[str]) -> list[str]:
    """Each block with the separator before it: a blank line, except between one-line rows,
    which stay together as one list."""
    pieces = blocks[:1]
    for previous, block in pairwise(blocks):
        tight = block.startswith("- ") and previous.startswith("- ")
        pieces.append(("\n" if tight else "\n\n") + block)
    return pieces


def render_markdown(plan: Plan, *, color: bool = False, max_chars: int = MAX_CHARS) -> str:
    """The plan for a pull-request comment, at most `max_chars` long (the table always shown).

    `color` has no effect on Markdown.
    """
    if not plan.operations and not plan.unmanaged:
        return f"{HEADING}\n\n{NO_CHANGES}\n"
    blocks = [operation_block(op) for op in plan.operations if not is_request_row(op)]
    requests = [_request_block(op) for op in plan.operations if is_request_row(op)]
    if requests:  # the heading rides on the first row, so every block is one operation
        requests[0] = f"**{REQUESTS_HEADING.rstrip(':')}**\n\n{requests[0]}"
        blocks += requests
    blocks += [operation_block(row) for row in plan.unmanaged]
    pieces = _pieces([f"{HEADING}\n\n{_table(plan)}", *blocks])
    if sum(map(len, pieces)) + 1 <= max_chars:
        return "".join(pieces) + "\n"
    # Room for the closing line, however many rows it ends up counting.
    room = max_chars - len(_left_out(len(plan.operations), len(plan.unmanaged))) - 3
    size, shown = len(pieces[0]), 0
    for piece in pieces[1:]:
        if size + len(piece) > room:
            break
        size += len(piece)
        shown += 1
    operations_shown = min(shown, len(plan.operations))
    closing = _left_out(len(plan.operations) - operations_shown,
                        len(plan.unmanaged) - (shown - operations_shown))
    return "".join(pieces[:shown + 1]) + f"\n\n{closing}\n"
