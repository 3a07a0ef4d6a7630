"""Resolves what specs point at — secrets and certificate files — for plan and apply.

A plan compares a secret by its keyed fingerprint: the desired document holds
`{sensitive: <fingerprint>}` where the spec had `{env: NAME}`, `{file: PATH}` or a sealed value,
and the references travel beside the document (`Desired.secrets`) so that apply resolves them
again, refuses a value that changed since the plan, and stores the ciphertext. Certificate files
are read at plan time and compared (and stored) as the PEM text they hold. Nothing here ever
puts a secret's value into a message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args

from cryptography import x509
from pydantic import BaseModel

from reconciler.canonical import canonical
from reconciler.db import vault
from reconciler.diff import Desired
from reconciler.errors import MimError, Problem
from reconciler.load import FieldPath, Locator, SpecDocument
from reconciler.sealing import load_private_key, unseal
from specs import KINDS
from specs.secrets import SEALED_PREFIX, STORED_KEY, CertificateRef, SecretRef

SENSITIVE = "(sensitive)"
SENSITIVE_CHANGED = "(sensitive value changed)"


class ResolveError(MimError):
    """A secret or certificate a spec points at cannot be read."""


def is_sensitive(value: Any) -> bool:
    """Whether `value` is a secret in any of its forms: sealed, stored (fingerprint), reference."""
    if isinstance(value, str):
        return value.startswith(SEALED_PREFIX)
    if isinstance(value, dict):
        return set(value) in ({STORED_KEY}, {"sealed"})
    return False


def redacted(value: Any) -> Any:
    """`value` with every secret inside it replaced by `(sensitive)`."""
    if is_sensitive(value):
        return SENSITIVE
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------
# Where references sit in a document

def _holds_references(annotation: Any, seen: set[type] | None = None) -> bool:
    seen = seen if seen is not None else set()
    if annotation in (SecretRef, CertificateRef):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        seen.add(annotation)
        return any(_holds_references(f.annotation, seen)
                   for f in annotation.model_fields.values())
    return any(_holds_references(arg, seen) for arg in get_args(annotation))


@cache
def kinds_with_references() -> frozenset[str]:
    """Kinds whose documents can hold secrets or certificate files (the others are skipped)."""
    return frozenset(kind for kind, model in KINDS.items() if _holds_references(model))


def references(value: Any, path: FieldPath = ()) -> Iterator[tuple[FieldPath, SecretRef | CertificateRef]]:
    """Every secret and certificate reference in a model, with its path in the canonical form."""
    if isinstance(value, (SecretRef, CertificateRef)):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from references(getattr(value, name), (*path, info.alias or name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from references(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from references(item, (*path, index))


def dotted(path: FieldPath) -> str:
    return ".".join(str(part) for part in path)


def _set(document: dict[str, Any], path: FieldPath, value: Any) -> None:
    target: Any = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


# ---------------------------------------------------------------------------------------------
# Reading values

class SecretResolver:
    """Reads secrets from the environment, files and sealed values; keys are loaded when needed."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._master: vault.MasterKey | None = None
        self._private: Any = None

    @property
    def master_key(self) -> vault.MasterKey:
        if self._master is None:
            self._master = vault.load_master_key(self.database_url)
        return self._master

    def value(self, reference: Any) -> bytes:
        """The plaintext of a reference in its JSON form ({env}, {file} with an absolute path,
        or a sealed string)."""
        if isinstance(reference, str):
            if self._private is None:
                self._private = load_private_key()
            return unseal(self._private, reference)
        if "env" in reference:
            name = reference["env"]
            if name not in os.environ:
                raise ResolveError(f"environment variable {name} is not set")
            return os.environ[name].encode()
        return read_secret_file(Path(reference["file"]))

    def fingerprint(self, reference: Any) -> str:
        return self.master_key.fingerprint(self.value(reference))


def read_secret_file(path: Path) -> bytes:
    """A secret file's bytes; a text file loses its one trailing newline (`echo x > file`)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ResolveError(f"cannot read secret file {path}: {error.strerror}") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # binary (a PKCS#12 file): exactly as it is
    return data[:-2] if data.endswith(b"\r\n") else data.removesuffix(b"\n")


def read_certificate_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not PEM text"
        raise ResolveError(f"cannot read certificate file {path}: {reason}") from None
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise ResolveError(f"{path} does not hold a PEM certificate") from None
    return text


def reference_json(reference: SecretRef, base: Path) -> Any:
    """A spec's reference as it travels in a plan: file paths made absolute."""
    if reference.sealed is not None:
        return reference.sealed
    if reference.env is not None:
        return {"env": reference.env}
    if reference.stored is not None:
        raise ResolveError(f"{{{STORED_KEY}: ...}} is how the database keeps a secret; write "
                           "{env: NAME}, {file: PATH} or a value sealed with `mimctl secret seal`")
    return {"file": str((base / str(reference.file)).resolve())}


# ---------------------------------------------------------------------------------------------
# Plan time

def desired_documents(documents: list[SpecDocument], resolver: SecretResolver
                      ) -> tuple[list[Desired], list[Problem]]:
    """The documents as plans compare them, and the problems of references that cannot be read."""
    desired: list[Desired] = []
    problems: list[Problem] = []
    locator = Locator()
    holders = kinds_with_references()
    for document in documents:
        form = canonical(document.model)
        secrets: dict[str, Any] = {}
        if document.kind in holders:
            base = document.source.path.parent
            for path, reference in references(document.model):
                try:
                    if isinstance(reference, CertificateRef):
                        if reference.file is not None:
                            _set(form, path, read_certificate_file(base / reference.file))
                        continue
                    travelling = reference_json(reference, base)
                    _set(form, path, {STORED_KEY: resolver.fingerprint(travelling)})
                    secrets[dotted(path)] = travelling
                except MimError as error:
                    line, column, clean = locator.find(document.source, path)
                    problems.append(Problem(document.source.file, line, column, str(error),
                                            document.kind, document.name, clean, code="secret"))
        desired.append(Desired(document.kind, document.name, form, str(document.source),
                               secrets))
    return desired, problems


# ---------------------------------------------------------------------------------------------
# Apply time

def operation_secrets(kind: str, name: str, document: dict[str, Any], secrets: dict[str, Any],
                      resolver: SecretResolver) -> dict[str, bytes]:
    """The plaintext of an operation's secrets, each checked against the planned fingerprint."""
    values = {}
    for path, reference in secrets.items():
        value = resolver.value(reference)
        planned: Any = document
        for part in path.split("."):
            planned = planned.get(part) if isinstance(planned, dict) else None
        if not isinstance(planned, dict) or planned.get(STORED_KEY) != \
                resolver.master_key.fingerprint(value):
            raise ResolveError(f"{kind}/{name} {path}: the secret changed since the plan was "
                               "made (or the master key did); make a new plan")
        values[path] = value
    return values
