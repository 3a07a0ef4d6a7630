"""Rules: DN templates (MIM6xx), manual §3.10.

Every template is checked: each DnPolicy's `spec.dn` and Settings `spec.dnProcessor.default`.
A template is parsed once however many documents share it (`_analyse` is cached); the fields a
template may name are the built-in person columns plus every custom attribute declared on at
least one Person, collected in one pass and only when a template needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from reconciler.load import FieldPath, SpecDocument, suggest
from reconciler.rules.registry import Finding, RuleContext, rule
from specs import dn_template
from specs.person import DN_FIELDS


@dataclass(frozen=True, slots=True)
class _Analysis:
    fields: tuple[dn_template.Field, ...]
    bracket_error: str | None  # MIM604
    dn_error: str | None  # MIM605 (None when the brackets are already wrong)


@lru_cache(maxsize=4096)
def _analyse(text: str) -> _Analysis:
    try:
        found = tuple(dn_template.fields(text))
    except dn_template.BracketError as error:
        return _Analysis((), error.message, None)
    try:
        dn_template.check(text)
    except dn_template.BracketError as error:  # pragma: no cover - fields() saw them first
        return _Analysis(found, error.message, None)
    except dn_template.DnTemplateError as error:
        return _Analysis(found, None, error.message)
    return _Analysis(found, None, None)


def _templates(ctx: RuleContext) -> Iterator[tuple[SpecDocument, FieldPath, str]]:
    for document in ctx.of_kind("DnPolicy"):
        yield document, ("spec", "dn"), document.model.spec.dn
    settings = ctx.settings_document
    if settings is not None and settings.model.spec.dn_processor.default is not None:
        yield settings, ("spec", "dnProcessor", "default"), settings.model.spec.dn_processor.default


def _known_fields(ctx: RuleContext) -> dict[str, str]:
    """Folded name -> name as declared, of every field a template may substitute."""
    known = {name.lower(): name for name in DN_FIELDS}
    for person in ctx.of_kind("Person"):
        for name in person.model.spec.attributes:
            known.setdefault(name.lower(), name)
    return known


_ENTITIES = {entity.lower() for entity in dn_template.ENTITIES}
_BUILTIN = {name.lower() for name in DN_FIELDS}


@rule("MIM602", "error",
      "A DN template names an unknown entity or person field ([[People.Field]])", "3.10.2")
def unknown_fields(ctx: RuleContext) -> Iterator[Finding]:
    """Only People can be substituted, and only its view's columns and declared attributes.

    Names match case-insensitively, as the view's column names do.
    """
    known: dict[str, str] | None = None
    for document, path, text in _templates(ctx):
        for field in _analyse(text).fields:
            if field.entity.lower() not in _ENTITIES:
                yield Finding(document, path,
                              f"{field.text}: unknown entity {field.entity!r}; only People (the "
                              "person the certificate is for) can be substituted, e.g. "
                              f"[[People.{field.name}]]")
                continue
            if field.name.lower() in _BUILTIN:
                continue
            if known is None:
                known = _known_fields(ctx)
            if field.name.lower() not in known:
                yield Finding(document, path,
                              f"{field.text}: unknown person field {field.name!r}"
                              f"{suggest(field.name, known.values())} (fields: built-in "
                              f"{', '.join(DN_FIELDS)}, or a custom attribute declared in a "
                              "Person's spec.attributes)")


@rule("MIM604", "error", "A DN template has unbalanced or malformed [[ ]] / [[[ ]]] brackets",
      "3.10")
def malformed_brackets(ctx: RuleContext) -> Iterator[Finding]:
    for document, path, text in _templates(ctx):
        error = _analyse(text).bracket_error
        if error is not None:
            yield Finding(document, path, f"{error} (substitutions are [[People.Field]], "
                                          "escaped, or [[[People.Field]]], raw)")


@rule("MIM605", "error", "A DN template does not make a valid RFC 4514 distinguished name",
      "3.10")
def invalid_dn(ctx: RuleContext) -> Iterator[Finding]:
    """The template, with a sample value for each substitution, must build an X.509 name."""
    for document, path, text in _templates(ctx):
        error = _analyse(text).dn_error
        if error is not None:
            yield Finding(document, path, f"not a valid DN: {error}")


@rule("MIM606", "error",
      "A profile issues certificates of a policy no DN policy covers, and there is no default DN",
      "3.10")
def policy_without_dn(ctx: RuleContext) -> Iterator[Finding]:
    """Subjects come from DN policies only (never from the device's CSR): a certificate the
    service would issue needs a DnPolicy for its policy, a default DnPolicy, or Settings'
    dnProcessor.default. HistoricOnly certificates are never issued anew."""
    if any(d.model.spec.default for d in ctx.of_kind("DnPolicy")) \
            or ctx.settings.dn_processor.default is not None:
        return
    covered = {d.model.spec.certificate_policy for d in ctx.of_kind("DnPolicy")}
    friendly = {d.name: d.model.spec.friendly_name for d in ctx.of_kind("CertificatePolicy")
                if d.model.spec.enabled}  # a disabled policy issues nothing
    for document, spec in ctx.profiles(mobile_only=True):
        for index, certificate in enumerate(spec.certificates):
            name = friendly.get(certificate.policy)
            if certificate.mode == "HistoricOnly" or name is None or name in covered:
                continue
            yield Finding(document, ("spec", "certificates", index, "policy"),
                          f"certificate policy {certificate.policy!r} ({name}) has no DN "
                          "policy and there is no default, so collection cannot name the "
                          "certificate: add a DnPolicy with certificatePolicy: "
                          f"{name}, or one with default: true")
