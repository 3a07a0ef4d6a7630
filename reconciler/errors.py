"""Errors and findings of mimctl.

Two shapes, for two situations:

- `Problem` is a finding about the user's specs (a YAML syntax error, an unknown key, a dangling
  reference). Problems are collected, never raised: a user fixes all of them in one pass.
  Each names the file, line and column of the offending node, the document (kind/name) and the
  field path, as `file:line:col: kind/name: field.path: message`.
- `MimError` is the base of exceptions that stop a command (a path that does not exist, a
  database that needs migrating). Subclasses carry what they are about, and every message says
  what to do next. The CLI turns them into exit code 1 and one line on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


def format_path(path: tuple[str | int, ...]) -> str:
    """Render a field path as `spec.certificates[0].container`."""
    text = ""
    for element in path:
        if isinstance(element, int):
            text += f"[{element}]"
        else:
            text += f".{element}" if text else str(element)
    return text


@dataclass(frozen=True, slots=True)
class Problem:
    """A finding about the specs, at an exact place."""

    file: str
    line: int
    column: int
    message: str
    kind: str | None = None
    name: str | None = None
    path: tuple[str | int, ...] = ()
    severity: Severity = "error"
    # "yaml", "schema", "reference", "duplicate" for the loader's findings; MIM### for rules.
    code: str = field(default="schema")

    @property
    def field_path(self) -> str:
        return format_path(self.path)

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}:{self.column}"]
        if self.kind:
            parts.append(f"{self.kind}/{self.name or '?'}")
        if self.path:
            parts.append(self.field_path)
        if self.severity != "error":
            parts.append(self.severity)
        parts.append(self.message)
        return ": ".join(parts)

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.message)

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file, "line": self.line, "column": self.column,
            "kind": self.kind, "name": self.name, "path": self.field_path,
            "severity": self.severity, "code": self.code, "message": self.message,
        }


class MimError(Exception):
    """Base of the errors that stop a mimctl command; the message says what to do next."""


class SpecPathError(MimError):
    """The PATH given to a command cannot be read as a configuration repository."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
