"""The rule catalogue's machinery: rules, findings, and running them over a repository.

A rule is a check the product's manual implies: a configuration that loads fine but makes
collection, unlock or notification fail at run time. Each has an id (MIM###), a severity, a
one-line title, the manual section it comes from, and a check that yields findings at the exact
field, each saying how to fix it. Register one with the `rule` decorator; ids are unique.

Some mistakes are caught while a document is read (a cross-field check in its model, or a
uniqueness check in validate.py); those rules are registered with `check=None` and the problem
carries the rule id as its code, so the catalogue lists every mistake in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from reconciler.errors import Problem, Severity
from reconciler.load import FieldPath, Locator, SpecDocument
from specs.base import IGNORE_RULES_ANNOTATION
from specs.settings import SettingsSpec

RULE_ID = re.compile(r"^MIM\d{3}$")
MOBILE_ENCODING = "IdentityAgent"  # the card encoding of profiles that issue mobile IDs


@dataclass(frozen=True, slots=True)
class Finding:
    """One place a rule fails: the document, the field path, and what to do about it."""

    document: SpecDocument
    path: FieldPath
    message: str


Check = Callable[["RuleContext"], Iterable[Finding | None]]  # None: nothing to report


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    title: str
    section: str  # of the product manual, e.g. "3.2.3"
    check: Check | None = None  # None: enforced while documents are read


REGISTRY: dict[str, Rule] = {}


def rule(rule_id: str, severity: Severity, title: str, section: str) -> Callable[[Check], Check]:
    """Register a rule check; a second rule with the same id is a programming error."""

    def register(check: Check) -> Check:
        _add(Rule(rule_id, severity, title, section, check))
        return check

    return register


def enforced_on_read(rule_id: str, severity: Severity, title: str, section: str) -> None:
    """Register a rule whose check lives in a model or in validate.py (it carries this id)."""
    _add(Rule(rule_id, severity, title, section, None))


def _add(entry: Rule) -> None:
    if not RULE_ID.match(entry.id):
        raise ValueError(f"rule id {entry.id!r} is not MIM###")
    if entry.id in REGISTRY:
        raise ValueError(f"rule {entry.id} is registered twice")
    REGISTRY[entry.id] = entry


@dataclass
class RuleContext:
    """The valid documents of a repository, with the look-ups rules need."""

    documents: list[SpecDocument]
    by_kind: dict[str, dict[str, SpecDocument]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[SpecDocument]:
        return list(self.by_kind.get(kind, {}).values())

    def get(self, kind: str, name: str) -> SpecDocument | None:
        return self.by_kind.get(kind, {}).get(name)

    @cached_property
    def settings_document(self) -> SpecDocument | None:
        return next(iter(self.of_kind("Settings")), None)

    @cached_property
    def settings(self) -> SettingsSpec:
        """The Settings spec, or all defaults when there is no Settings document."""
        document = self.settings_document
        return document.model.spec if document is not None else SettingsSpec()

    def settings_finding(self, path: FieldPath, message: str,
                         fallback: SpecDocument | None = None) -> Finding | None:
        """A finding on a Settings field; without a Settings document, on `fallback`."""
        if self.settings_document is not None:
            return Finding(self.settings_document, ("spec", *path), message)
        if fallback is not None:
            return Finding(fallback, (), message + " (there is no Settings document: add one)")
        return None

    def spec(self, document: SpecDocument) -> Any:
        return document.model.spec

    def profiles(self, mobile_only: bool = False) -> list[tuple[SpecDocument, Any]]:
        """(document, spec) of every CredentialProfile, or only the Identity Agent (mobile) ones."""
        return [(document, document.model.spec) for document in self.of_kind("CredentialProfile")
                if not mobile_only or document.model.spec.card_encoding == MOBILE_ENCODING]


def ignored_rules(document: SpecDocument) -> set[str]:
    text = document.model.metadata.annotations.get(IGNORE_RULES_ANNOTATION, "")
    return {part.strip() for part in text.split(",") if part.strip()}


def run_rules(documents: list[SpecDocument], by_kind: dict[str, dict[str, SpecDocument]],
              locator: Locator, selected: Iterable[str] | None = None) -> Iterator[Problem]:
    """Every finding of the registered checks, as problems at their exact place."""
    context = RuleContext(documents, by_kind)
    wanted = set(selected) if selected is not None else None
    for entry in REGISTRY.values():
        if entry.check is None or (wanted is not None and entry.id not in wanted):
            continue
        for finding in entry.check(context):
            if finding is None:
                continue
            document = finding.document
            message = finding.message
            if entry.id in ignored_rules(document):
                if entry.severity == "warning":
                    continue
                message += f" ({entry.id} is an error: mim/ignore-rules cannot silence it)"
            line, column, path = locator.find(document.source, finding.path)
            yield Problem(document.source.file, line, column, message, document.kind,
                          document.name, path, severity=entry.severity, code=entry.id)


def catalogue_text() -> str:
    """The catalogue for a terminal: one rule a line."""
    lines = [f"{r.id}  {r.severity:<7}  §{r.section:<8}  {r.title}" for r in _sorted()]
    return "\n".join(lines) + "\n"


def catalogue_markdown() -> str:
    """docs/rules.md, generated (`mimctl validate --list-rules --format markdown`)."""
    lines = [
        "# mimctl rule catalogue",
        "",
        "Generated by `mimctl validate --list-rules --format markdown`; do not edit by hand.",
        "",
        "Every rule runs in `mimctl validate` and in every `mimctl reconcile --plan`. Errors stop",
        "the plan; warnings are shown and only stop it with `--strict`. A document silences a",
        "warning for itself with the annotation `mim/ignore-rules: MIM###,MIM###`; errors cannot",
        "be silenced. Section numbers refer to the product manual.",
        "",
        "| id | severity | manual | rule |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.id} | {r.severity} | {r.section} | {r.title} |" for r in _sorted()]
    return "\n".join(lines) + "\n"


def _sorted() -> list[Rule]:
    return sorted(REGISTRY.values(), key=lambda r: r.id)
