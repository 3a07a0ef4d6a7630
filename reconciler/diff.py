"""Desired documents vs stored objects -> typed operations (pure: values in, values out).

Like alembic's autogenerate, the comparison is set algebra on (kind, name): desired − stored →
Create, stored − desired → Delete (managed rows) or a report (unmanaged rows), and the overlap →
field-level changes. Field changes come from deepdiff and read as `spec.certificates[0].container`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from deepdiff import DeepDiff

from reconciler.canonical import Canonical, digest, is_protected
from reconciler.db.models import MANAGED_BY_SPEC
from reconciler.errors import format_path
from reconciler.state import Key, State
from specs.secrets import STORED_KEY

REQUEST = "MobileRequest"
SETTLED = frozenset({"collected", "canceled"})  # request jobs that removal leaves alone


class ChangeOp(str, Enum):
    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"


class Change(NamedTuple):
    """One field-level difference; a tuple, so it compares equal to ("add", path, old, new)."""

    op: ChangeOp
    path: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True)
class Desired:
    """A document as the specs want it."""

    kind: str
    name: str
    document: Canonical
    source: str = ""  # file:line:col, for rendering
    secrets: dict[str, Any] = field(default_factory=dict)  # path -> reference (resolve.py)


@dataclass(frozen=True, slots=True)
class Create:
    kind: str
    name: str
    document: Canonical
    source: str = ""
    secrets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Update:
    kind: str
    name: str
    expected: str  # digest of the row as planned
    changes: tuple[Change, ...]
    document: Canonical
    source: str = ""
    secrets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Adopt:
    """Take a row created outside the specs under management (and make it match the spec)."""

    kind: str
    name: str
    expected: str
    changes: tuple[Change, ...]
    document: Canonical
    source: str = ""
    secrets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    name: str
    expected: str
    protected: bool = False
    pruned: bool = True  # False under --no-prune: reported, not done
    request_status: str | None = None  # a MobileRequest's job: pending (cancel), collected, ...
    label: str = ""  # a MobileRequest's person/profile, for the plan

    @property
    def cancels(self) -> bool:
        """Whether deleting this row cancels an open request (a fulfilled one stays done)."""
        return self.kind != REQUEST or self.request_status not in SETTLED


Operation = Create | Update | Adopt | Delete


@dataclass(frozen=True, slots=True)
class Unmanaged:
    """A row created outside the specs, left alone."""

    kind: str
    name: str
    conflict: bool = False  # a spec wants this name: --adopt to take it over


def changes_between(old: Canonical, new: Canonical) -> tuple[Change, ...]:
    """Field-level changes from `old` to `new`, in path order."""
    found: list[tuple[tuple[tuple[int, Any], ...], Change]] = []
    tree = DeepDiff(old, new, view="tree", verbose_level=2)
    for report, levels in tree.items():
        for level in levels:
            elements = tuple(level.path(output_format="list"))
            if elements and elements[-1] == STORED_KEY:  # a secret's fingerprint: the secret
                elements = elements[:-1]
                found.append((_order(elements), Change(
                    ChangeOp.CHANGE, format_path(elements), {STORED_KEY: level.t1},
                    {STORED_KEY: level.t2})))
                continue
            path = format_path(elements)
            if report in ("dictionary_item_added", "iterable_item_added"):
                change = Change(ChangeOp.ADD, path, None, level.t2)
            elif report in ("dictionary_item_removed", "iterable_item_removed"):
                change = Change(ChangeOp.REMOVE, path, level.t1, None)
            else:
                change = Change(ChangeOp.CHANGE, path, level.t1, level.t2)
            found.append((_order(elements), change))
    return tuple(change for _, change in sorted(found, key=lambda pair: pair[0]))


def _order(elements: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    """Sort by path elements, so items[2] comes before items[10]."""
    return tuple((isinstance(e, str), e) for e in elements)


def diff(desired: Iterable[Desired], state: State, *, prune: bool = True,
         adopt: bool = False) -> tuple[list[Operation], list[Unmanaged]]:
    """The operations that turn `state` into `desired`, and the unmanaged rows seen."""
    wanted: dict[Key, Desired] = {(d.kind, d.name): d for d in desired}
    operations: list[Operation] = []
    unmanaged: list[Unmanaged] = []
    for key, want in wanted.items():
        stored = state.objects.get(key)
        if stored is None:
            operations.append(Create(want.kind, want.name, want.document, want.source,
                                     want.secrets))
        elif stored.managed_by != MANAGED_BY_SPEC:
            if adopt:
                operations.append(Adopt(want.kind, want.name, stored.digest,
                                        changes_between(stored.document, want.document),
                                        want.document, want.source, want.secrets))
            else:
                unmanaged.append(Unmanaged(want.kind, want.name, conflict=True))
        elif stored.document != want.document:
            operations.append(Update(want.kind, want.name, stored.digest,
                                     changes_between(stored.document, want.document),
                                     want.document, want.source, want.secrets))
    for key, stored in state.objects.items():
        if key in wanted:
            continue
        if stored.managed_by == MANAGED_BY_SPEC:
            status, label = None, ""
            if stored.kind == REQUEST:
                spec = stored.document["spec"]
                status = state.request_status.get(stored.name)
                label = f"{spec['person']}/{spec['credentialProfile']}"
            operations.append(Delete(stored.kind, stored.name, stored.digest,
                                     protected=stored.protected or is_protected(stored.document),
                                     pruned=prune, request_status=status, label=label))
        else:
            unmanaged.append(Unmanaged(stored.kind, stored.name))
    return operations, unmanaged


__all__ = ["Adopt", "Change", "ChangeOp", "Create", "Delete", "Desired", "Operation", "Unmanaged",
           "Update", "changes_between", "diff", "digest"]
