"""`mimctl diff`: what changed in the specs between two git revisions, object by object."""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

import click

from cli_commands.context import plural

MARKS = {"added": "+", "removed": "-", "changed": "~", "renamed": "="}


def _value(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("(") else json.dumps(
        value, ensure_ascii=False, sort_keys=True)


def _change_text(change: Any) -> str:
    if change.op == "+":
        return f"+ {change.path}: {_value(change.new)}"
    if change.op == "-":
        return f"- {change.path}: {_value(change.old)}"
    if change.old == change.new:  # a secret: both sides are the same marker
        return f"~ {change.path}: {change.new}"
    return f"~ {change.path}: {_value(change.old)} -> {_value(change.new)}"


def render_text(diff: Any, security: bool) -> str:
    if security:
        lines = [f"Changes that widen access, {diff.old} -> {diff.new}:",
                 *(f"! {line}" for line in diff.security)]
        return "\n".join(lines if diff.security else [f"Nothing widens access, {diff.old} -> "
                                                      f"{diff.new}."]) + "\n"
    if not diff.objects:
        return f"No differences, {diff.old} -> {diff.new}.\n"
    differ = "differs" if len(diff.objects) == 1 else "differ"
    lines = [f"{diff.old} -> {diff.new}: {plural(len(diff.objects), 'object')} {differ}", ""]
    for item in diff.objects:
        head = f"{MARKS[item.action]} {item.kind}/{item.name}"
        if item.renamed_from:
            head += f"  (renamed from {item.kind}/{item.renamed_from}, content unchanged)"
        lines.append(head)
        lines += [f"    {_change_text(change)}" for change in item.changes]
    return "\n".join(lines) + "\n"


def render_json(diff: Any, security: bool) -> str:
    data: dict[str, Any] = {"format_version": 1, "old": diff.old, "new": diff.new,
                            "widens_access": diff.security}
    if not security:
        data["objects"] = [{
            "kind": item.kind, "name": item.name, "action": item.action,
            "renamed_from": item.renamed_from,
            "changes": [{"op": c.op, "path": c.path, "old": c.old, "new": c.new}
                        for c in item.changes]} for item in diff.objects]
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def render_markdown(diff: Any, security: bool) -> str:
    lines = [f"### Spec changes `{diff.old}` → `{diff.new}`", ""]
    if diff.security:
        lines += ["**Widens access**", "", *(f"- ⚠️ {line}" for line in diff.security), ""]
    if security:
        return "\n".join(lines if diff.security else [*lines, "Nothing widens access."]) + "\n"
    if not diff.objects:
        return "\n".join([*lines, "No differences."]) + "\n"
    for item in diff.objects:
        marked = escape(f"{MARKS[item.action]} {item.kind}/{item.name}", quote=False)
        head = f"- <code>{marked}</code>"
        if item.renamed_from:
            head += f" (renamed from `{item.renamed_from}`)"
        lines.append(head)
        lines += [f"  - <code>{escape(_change_text(c), quote=False)}</code>"
                  for c in item.changes]
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}


@click.command("diff")
@click.argument("rev_a")
@click.argument("rev_b", required=False)
@click.argument("path", required=False, default=".")
@click.option("--format", "output_format", type=click.Choice(list(RENDERERS)), default="text",
              show_default=True, help="text for people, json for tools, markdown for reviews.")
@click.option("--security", is_flag=True,
              help="Only the changes that widen access: workflows, scopes, Can-* roles, MDM and "
                   "device restrictions, validation, code length, lock-out, plain HTTP.")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="The git repository.")
def diff_command(rev_a: str, rev_b: str | None, path: str, output_format: str, security: bool,
                 repo: Path) -> None:
    """Show what changed in the specs under PATH from REV_A to REV_B (default: the working tree).

    Revisions are read from git objects, without a checkout. Objects added, removed, renamed
    (same content, new name) and changed field by field; lists whose order means nothing are
    compared as sets; secrets show only that they changed. Exit 0 when nothing differs, 2 when
    something does, 1 on errors.
    """
    from reconciler.specdiff import diff_revisions

    result = diff_revisions(repo.resolve(), rev_a, rev_b, path)
    click.echo(RENDERERS[output_format](result, security), nl=False)
    changed = result.security if security else result.objects
    sys.exit(2 if changed else 0)
