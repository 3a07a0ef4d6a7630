"""Checks across documents: every reference resolves, and what must be unique is.

The rule catalogue of DESIGN.md §5 (MIM### rules drawn from the manual's troubleshooting) builds
on the same `Catalog`; this module holds the integrity checks any configuration must pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import Problem
from reconciler.load import (
    FieldPath,
    LoadResult,
    Locator,
    SpecDocument,
    load,
    paused_gc,
    suggest,
)
from reconciler.rules import run_rules
from specs import KINDS
from specs.card_format import BUILTIN_CONTAINERS, CardFormat
from specs.certificate_policy import CertificatePolicy
from specs.credential_profile import CredentialProfile
from specs.device import Device
from specs.dn_policy import DnPolicy
from specs.settings import Settings


@dataclass(slots=True)
class Catalog:
    """The valid documents of a repository, indexed by kind and name."""

    documents: list[SpecDocument]
    by_kind: dict[str, dict[str, SpecDocument]] = field(default_factory=dict)
    _names: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_kind = {kind: {} for kind in KINDS}
        for document in self.documents:
            self.by_kind[document.kind].setdefault(document.name, document)
        self._names = {kind: set(documents) | set(KINDS[kind].builtin_names)
                       for kind, documents in self.by_kind.items()}

    def names(self, kind: str) -> set[str]:
        """Declared and built-in names of a kind (do not modify)."""
        return self._names[kind]

    def of_kind(self, kind: str) -> Iterable[SpecDocument]:
        return self.by_kind[kind].values()

    @property
    def settings(self) -> Settings | None:
        document = next(iter(self.by_kind["Settings"].values()), None)
        return document.model if document is not None else None  # type: ignore[return-value]


@dataclass(slots=True)
class Report:
    """The outcome of validating a repository."""

    catalog: Catalog
    problems: list[Problem]
    files: list[str]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


class _Finder:
    """Makes problems about a document at a field path."""

    def __init__(self, locator: Locator) -> None:
        self.locator = locator

    def problem(self, document: SpecDocument, path: FieldPath, message: str, code: str) -> Problem:
        line, column, clean = self.locator.find(document.source, path)
        return Problem(document.source.file, line, column, message, document.kind,
                       document.name, clean, code=code)


def validate(path: str | Path, *, rules: bool = True) -> Report:
    """Load a repository and run every check; the report holds all problems, sorted.

    `rules=False` leaves out the rule catalogue (the benchmark measures what it costs).
    """
    with paused_gc():
        loaded: LoadResult = load(path)
        catalog = Catalog(loaded.documents)
        finder = _Finder(Locator())
        problems = [*loaded.problems, *check_references(catalog, finder),
                    *check_uniqueness(catalog, finder),
                    *(run_rules(catalog.documents, catalog.by_kind, finder.locator)
                      if rules else ())]
    problems.sort(key=Problem.sort_key)
    return Report(catalog, problems, loaded.files)


def check_references(catalog: Catalog, finder: _Finder) -> Iterator[Problem]:
    """Every name a document uses must name a document (or a built-in) of the right kind."""
    friendly_names = {d.model.spec.friendly_name for d in catalog.of_kind("CertificatePolicy")}
    for document in catalog.documents:
        for reference in document.model.references():
            if reference.key == "friendlyName":
                if reference.name not in friendly_names:
                    yield finder.problem(
                        document, reference.path,
                        f"no CertificatePolicy has friendlyName {reference.name!r}"
                        f"{suggest(reference.name, friendly_names)}", "MIM601")
                continue
            known = catalog.names(reference.kind)
            if reference.name not in known:
                yield finder.problem(
                    document, reference.path,
                    f"unknown {reference.kind} {reference.name!r}{suggest(reference.name, known)}",
                    "reference")
        if isinstance(document.model, CredentialProfile):
            yield from _check_containers(catalog, document, document.model, finder)


def _check_containers(catalog: Catalog, document: SpecDocument, profile: CredentialProfile,
                      finder: _Finder) -> Iterator[Problem]:
    format_name = profile.spec.card_format
    if format_name in BUILTIN_CONTAINERS:
        containers = set(BUILTIN_CONTAINERS[format_name])
    elif format_name in catalog.by_kind["CardFormat"]:
        card_format = catalog.by_kind["CardFormat"][format_name].model
        assert isinstance(card_format, CardFormat)
        containers = {container.name for container in card_format.spec.containers}
    else:
        return  # the unknown card format is reported by the reference check
    for index, certificate in enumerate(profile.spec.certificates):
        if certificate.container is not None and certificate.container not in containers:
            listed = ", ".join(sorted(containers)) or "none"
            yield finder.problem(
                document, ("spec", "certificates", index, "container"),
                f"card format {format_name!r} has no container {certificate.container!r} "
                f"(its containers: {listed})", "MIM305")


def check_uniqueness(catalog: Catalog, finder: _Finder) -> Iterator[Problem]:
    """Values other documents look up must be unique; built-in names cannot be redefined."""
    for document in catalog.of_kind("CardFormat"):
        if document.name in CardFormat.builtin_names:
            yield finder.problem(document, ("metadata", "name"),
                                 f"card format {document.name!r} is built in and cannot be "
                                 "redefined; give yours another name", "duplicate")
    yield from _unique(finder, catalog.of_kind("CertificatePolicy"), ("spec", "friendlyName"),
                       lambda m: m.spec.friendly_name if isinstance(m, CertificatePolicy) else None,
                       "friendlyName {value!r} is already used by {other}; DN policies find "
                       "certificate policies by it")
    yield from _unique(finder, catalog.of_kind("Device"), ("spec", "serialNumber"),
                       lambda m: m.spec.serial_number if isinstance(m, Device) else None,
                       "serial number {value!r} is already registered as {other}")
    yield from _unique(finder, catalog.of_kind("DnPolicy"), ("spec", "certificatePolicy"),
                       lambda m: m.spec.certificate_policy if isinstance(m, DnPolicy) else None,
                       "certificate policy {value!r} already has a DN policy: {other}")
    yield from _unique(finder, catalog.of_kind("DnPolicy"), ("spec", "default"),
                       lambda m: True if isinstance(m, DnPolicy) and m.spec.default else None,
                       "a default DN policy already exists: {other}", code="MIM603")
    settings = catalog.settings
    if settings is not None and settings.spec.dn_processor.default is not None:
        for document in catalog.of_kind("DnPolicy"):
            if isinstance(document.model, DnPolicy) and document.model.spec.default:
                yield finder.problem(document, ("spec", "default"),
                                     "Settings already sets dnProcessor.default; keep one "
                                     "default DN", "MIM603")


def _unique(finder: _Finder, documents: Iterable[SpecDocument], path: FieldPath, value_of,
            message: str, code: str = "duplicate") -> Iterator[Problem]:
    first: dict[object, SpecDocument] = {}
    for document in documents:
        value = value_of(document.model)
        if value is None:
            continue
        other = first.setdefault(value, document)
        if other is not document:
            yield finder.problem(document, path, message.format(
                value=value, other=f"{other.kind}/{other.name} ({other.source})"), code)

