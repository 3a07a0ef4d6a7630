"""Semantic differences between the specs at two git revisions, for reviewers and auditors.

The specs of a revision are read from git objects (`git ls-tree`, `git cat-file --batch`), not
a checkout, into a scratch folder and loaded as `validate` does; the working tree stands for
itself. Documents are compared in their canonical form, field by field (deepdiff), with:

- lists whose order means nothing (a person's roles, a role's workflows, a profile's Can-*
  roles, ...) compared as sets, so reordering them is no change; other lists keep order;
- renames: an object removed and one added with the same kind and the same content;
- secrets shown as `(sensitive value changed)`, never their values;
- `security`: the changes that widen access (a role gaining a workflow or wider scope, a
  person gaining a role, a profile's Can-* gaining a role, MDM or device restrictions relaxed,
  validation of issuance switched off, shorter codes, more attempts, plain HTTP allowed).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepdiff import DeepDiff

from reconciler.canonical import canonical, digest
from reconciler.errors import MimError
from reconciler.load import load
from reconciler.resolve import is_sensitive

SENSITIVE_CHANGE = "(sensitive value changed)"
WORKING_TREE = "working tree"
# (kind, path) of lists compared as sets; "*" matches any key at that place.
UNORDERED = {
    ("Person", ("spec", "roles")),
    ("Role", ("spec", "workflows")), ("Role", ("spec", "logonMechanisms")),
    ("CredentialProfile", ("spec", "roles", "*")),
    ("CredentialProfile", ("spec", "cardLayouts")),
    ("CredentialProfile", ("spec", "authenticationTypes")),
    ("CertificatePolicy", ("spec", "keyUsages")),
    ("CertificatePolicy", ("spec", "extendedKeyUsages")),
}
SCOPES = ["Self", "Department", "Division", "All"]
DEVICE_RESTRICTIONS = ["MyMobilesOnly", "KnownMobiles", "Any"]
MDM_STATUS_STRICTNESS = {"MustBeRegistered": 1, "MustNotBeRegistered": 1, "Unrestricted": 0}


class DiffError(MimError):
    """A revision that cannot be read, or specs that do not load."""


@dataclass(frozen=True, slots=True)
class Change:
    """One field of one object: `~` changed, `+` added, `-` removed."""

    op: str
    path: str
    old: Any = None
    new: Any = None


@dataclass(slots=True)
class ObjectDiff:
    kind: str
    name: str
    action: str  # added, removed, changed, renamed
    changes: list[Change] = field(default_factory=list)
    renamed_from: str | None = None


@dataclass(slots=True)
class SpecDiff:
    old: str
    new: str
    objects: list[ObjectDiff] = field(default_factory=list)
    security: list[str] = field(default_factory=list)


# --- Reading a revision ------------------------------------------------------------------------

def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True,
                          check=False, timeout=120)
    if done.returncode != 0:
        raise DiffError(f"git {' '.join(args[:2])}: {done.stderr.decode(errors='replace')}"
                        .strip())
    return done.stdout


def _write_revision(repo: Path, revision: str, path: str, into: Path) -> None:
    """The YAML files under `path` at `revision`, from git objects, written below `into`."""
    listed = _git(repo, "ls-tree", "-r", "-z", "--full-tree", revision, "--", path)
    entries = []
    for record in filter(None, listed.split(b"\0")):
        meta, name = record.split(b"\t", 1)
        _mode, kind, sha = meta.split()
        file = name.decode()
        if kind == b"blob" and file.endswith((".yaml", ".yml")):
            entries.append((file, sha.decode()))
    if not entries:
        return
    batch = _git(repo, "cat-file", "--batch",
                 data="".join(f"{sha}\n" for _, sha in entries).encode())
    offset = 0
    for file, _sha in entries:
        header_end = batch.index(b"\n", offset)
        size = int(batch[offset:header_end].split()[2])
        content = batch[header_end + 1:header_end + 1 + size]
        offset = header_end + 1 + size + 1
        target = into / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def documents_at(repo: Path, revision: str | None, path: str) -> dict[tuple[str, str], Any]:
    """{(kind, name): canonical document} of the specs under `path` at `revision` (None: the
    working tree). Specs that do not load are an error naming the revision."""
    with tempfile.TemporaryDirectory(prefix="mimctl-diff-") as scratch:
        if revision is None:
            root = repo / path
        else:
            _write_revision(repo, revision, path, Path(scratch))
            root = Path(scratch) / path
        loaded = load(root) if root.exists() else None
    if loaded is None:
        return {}
    if loaded.errors:
        first = loaded.errors[0]
        where = revision or WORKING_TREE
        raise DiffError(f"the specs at {where} do not load ({len(loaded.errors)} errors), "
                        f"first: {first.message}")
    return {(d.kind, d.name): canonical(d.model) for d in loaded.documents}


# --- Comparing ---------------------------------------------------------------------------------

def _normalized(kind: str, value: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(value, dict):
        return {key: _normalized(kind, item, (*path, key)) for key, item in value.items()}
    if isinstance(value, list):
        items = [_normalized(kind, item, (*path, "[]")) for item in value]
        return sorted(items, key=repr) if _unordered(kind, path) else items
    return value


def _unordered(kind: str, path: tuple[Any, ...]) -> bool:
    """Whether the list at `path` of a `kind` document is a set (its order means nothing)."""
    return any(k == kind and len(p) == len(path)
               and all(a in ("*", b) for a, b in zip(p, path, strict=True))
               for k, p in UNORDERED)


def _dotted(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(value: Any) -> Any:
    return SENSITIVE_CHANGE if is_sensitive(value) else value


def field_changes(kind: str, old: Any, new: Any) -> list[Change]:
    """The changes from one canonical document to another, in path order."""
    found = DeepDiff(_normalized(kind, old), _normalized(kind, new), verbose_level=2,
                     view="tree")
    changes = []
    for report, op in (("values_changed", "~"), ("type_changes", "~"),
                       ("dictionary_item_added", "+"), ("iterable_item_added", "+"),
                       ("dictionary_item_removed", "-"), ("iterable_item_removed", "-")):
        for level in found.get(report, []):
            parts = level.path(output_format="list")
            if parts and isinstance(parts[-1], int) and _unordered(kind, tuple(parts[:-1])):
                parts = parts[:-1]  # a member of a set: its position means nothing
            path = _dotted(parts)
            before = None if op == "+" else level.t1
            after = None if op == "-" else level.t2
            if op == "~" and (is_sensitive(before) or is_sensitive(after)):
                changes.append(Change("~", path, SENSITIVE_CHANGE, SENSITIVE_CHANGE))
            else:
                changes.append(Change(op, path, _shown(before), _shown(after)))
    return sorted(changes, key=lambda change: change.path)


def diff_documents(old: dict[tuple[str, str], Any], new: dict[tuple[str, str], Any],
                   old_name: str, new_name: str) -> SpecDiff:
    result = SpecDiff(old_name, new_name)
    removed = {key: doc for key, doc in old.items() if key not in new}
    added = {key: doc for key, doc in new.items() if key not in old}
    renamed: dict[tuple[str, str], str] = {}
    by_content = {(kind, digest(doc)): name for (kind, name), doc in removed.items()}
    for (kind, name), doc in sorted(added.items()):
        previous = by_content.pop((kind, digest(doc)), None)
        if previous is not None:
            renamed[(kind, name)] = previous
            removed.pop((kind, previous))
    for key in sorted(set(old) | set(new)):
        kind, name = key
        if key in renamed:
            result.objects.append(ObjectDiff(kind, name, "renamed", renamed_from=renamed[key]))
        elif key in added:
            result.objects.append(ObjectDiff(kind, name, "added"))
        elif key in removed:
            result.objects.append(ObjectDiff(kind, name, "removed"))
        elif key in old and key in new:
            changes = field_changes(kind, old[key], new[key])
            if changes:
                result.objects.append(ObjectDiff(kind, name, "changed", changes))
    result.security = widened(old, new)
    return result


def diff_revisions(repo: Path, old: str, new: str | None, path: str) -> SpecDiff:
    return diff_documents(documents_at(repo, old, path), documents_at(repo, new, path), old,
                          new or WORKING_TREE)


# --- What widens access ------------------------------------------------------------------------

def _get(document: Any, *path: str) -> Any:
    for part in path:
        document = document.get(part) if isinstance(document, dict) else None
    return document


def widened(old: dict[tuple[str, str], Any], new: dict[tuple[str, str], Any]) -> list[str]:
    """Each change from `old` to `new` that lets more people do more (new objects included)."""
    found: list[str] = []
    for (kind, name), after in sorted(new.items()):
        before = old.get((kind, name), {"spec": {}})
        check = _CHECKS.get(kind)
        if check is not None:
            found += [f"{kind}/{name}: {text}" for text in check(before["spec"], after["spec"])]
    return found


def _gained(before: Any, after: Any) -> list[Any]:
    return sorted(set(after or []) - set(before or []))


def _role(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    texts = [f"gains workflow {w}" for w in _gained(before.get("workflows"),
                                                   after.get("workflows"))]
    old_scope, new_scope = before.get("scope", "Self"), after.get("scope", "Self")
    if SCOPES.index(new_scope) > SCOPES.index(old_scope) and before:
        texts.append(f"scope widened from {old_scope} to {new_scope}")
    return texts


def _person(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    texts = [f"gains role {r}" for r in _gained(before.get("roles"), after.get("roles"))]
    if before and before.get("enabled") is False and after.get("enabled", True):
        texts.append("enabled again")
    return texts


def _profile(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    texts = []
    for field_name, roles in sorted((after.get("roles") or {}).items()):
        texts += [f"{field_name} gains role {r}"
                  for r in _gained(_get(before, "roles", field_name), roles)]
    if before:
        old_mdm = _get(before, "mdmRestrictions", "status") or "Unrestricted"
        new_mdm = _get(after, "mdmRestrictions", "status") or "Unrestricted"
        if MDM_STATUS_STRICTNESS[new_mdm] < MDM_STATUS_STRICTNESS[old_mdm]:
            texts.append(f"MDM restriction relaxed from {old_mdm} to {new_mdm}")
        old_required = _get(before, "mdmRestrictions", "requiredAttributes")
        new_required = _get(after, "mdmRestrictions", "requiredAttributes")
        if old_required and new_required != old_required and old_mdm == new_mdm:
            texts.append(f"required MDM attributes changed from {old_required!r} to "
                         f"{new_required!r}")
        old_device = before.get("mobileDeviceRestrictions", "Any")
        new_device = after.get("mobileDeviceRestrictions", "Any")
        if DEVICE_RESTRICTIONS.index(new_device) > DEVICE_RESTRICTIONS.index(old_device):
            texts.append(f"device restriction loosened from {old_device} to {new_device}")
        if _get(before, "issuance", "validateIssuance") and \
                not _get(after, "issuance", "validateIssuance"):
            texts.append("validation of issuance switched off")
    return texts


def _settings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    if not before:
        return []
    texts = []
    old_code = _get(before, "certificates", "certificateRecoveryPasswordComplexity")
    new_code = _get(after, "certificates", "certificateRecoveryPasswordComplexity")
    if old_code and new_code and int(new_code[:2]) < int(old_code[:2]):
        texts.append(f"authentication codes shorter: {old_code} to {new_code}")
    old_attempts = _get(before, "requests", "maxCodeAttempts")
    new_attempts = _get(after, "requests", "maxCodeAttempts")
    if old_attempts and new_attempts and new_attempts > old_attempts:
        texts.append(f"lock-out raised from {old_attempts} to {new_attempts} wrong codes")
    if not _get(before, "auth", "allowUnsafeHttp") and _get(after, "auth", "allowUnsafeHttp"):
        texts.append("plain HTTP allowed (auth.allowUnsafeHttp)")
    return texts


_CHECKS = {"Role": _role, "Person": _person, "CredentialProfile": _profile,
           "Settings": _settings}
