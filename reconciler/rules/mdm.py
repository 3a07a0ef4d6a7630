"""Rules: MDM restrictions and external systems (MIM5xx), manual §3.11."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from reconciler.rules.registry import Finding, RuleContext, rule
from specs.external_system import MDM_LISTENER_TYPES

_RESTRICTS = ("MustBeRegistered", "MustNotBeRegistered")
_MDM_TYPES = ", ".join(MDM_LISTENER_TYPES)
_ONE_OF_MDM_TYPES = f"{', '.join(MDM_LISTENER_TYPES[:-1])} or {MDM_LISTENER_TYPES[-1]}"
_PATH = ("spec", "mdmRestrictions")
_COMPONENT_RE = re.compile(r"^[^\s.=,]+$")


@rule("MIM503", "error",
      "An MDM status other than Unrestricted needs mdmRestrictions.externalSystem (unless "
      "exactly one enabled MDM system exists)", "3.11.4")
def missing_external_system(ctx: RuleContext) -> Iterator[Finding]:
    """The product picks the MDM system itself only when there is exactly one to pick."""
    enabled = None
    for document in ctx.of_kind("CredentialProfile"):
        restrictions = document.model.spec.mdm_restrictions
        if restrictions.status not in _RESTRICTS or restrictions.external_system is not None:
            continue
        if enabled is None:
            enabled = sorted(d.name for d in ctx.of_kind("ExternalSystem")
                             if d.model.is_mdm and d.model.spec.enabled)
        if len(enabled) == 1:
            continue
        if enabled:
            hint = f"name one of the enabled MDM systems: {', '.join(enabled)}"
        else:
            hint = f"no enabled MDM ExternalSystem ({_MDM_TYPES}) exists: add one and name it"
        yield Finding(document, (*_PATH, "externalSystem"),
                      f"status {restrictions.status} needs the MDM system to ask; {hint}")


@rule("MIM504", "error", "mdmRestrictions.externalSystem names a disabled or non-MDM system",
      "3.11.4")
def unusable_external_system(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CredentialProfile"):
        name = document.model.spec.mdm_restrictions.external_system
        if name is None:
            continue
        system = ctx.get("ExternalSystem", name)
        if system is None:
            continue  # an unknown name is a reference error already
        spec = system.model.spec
        if not system.model.is_mdm:
            yield Finding(document, (*_PATH, "externalSystem"),
                          f"{name!r} is a {spec.listener_type} system, not an MDM: name an "
                          f"{_ONE_OF_MDM_TYPES} system")
        elif not spec.enabled:
            yield Finding(document, (*_PATH, "externalSystem"),
                          f"{name!r} is disabled, so every collection would fail its MDM check: "
                          "enable it or name an enabled MDM system")


@rule("MIM505", "error", "requiredAttributes apply only to status MustBeRegistered", "3.11.4")
def attributes_without_registration(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CredentialProfile"):
        restrictions = document.model.spec.mdm_restrictions
        if restrictions.required_attributes is not None and \
                restrictions.status != "MustBeRegistered":
            yield Finding(document, (*_PATH, "requiredAttributes"),
                          f"required MDM attributes are only checked for status "
                          f"MustBeRegistered, not {restrictions.status}: set status "
                          "MustBeRegistered or remove requiredAttributes")


def required_attribute_errors(text: str) -> list[str]:
    """What is wrong with a requiredAttributes string (`field=value,a.b=value`), part by part."""
    if not text.strip():
        return ["it is empty: remove it, or write field=value[,field=value...]"]
    errors = []
    parts = text.split(",")
    for number, part in enumerate(parts, 1):
        where = f"part {number} {part.strip()!r}" if len(parts) > 1 else repr(part.strip())
        field, equals, _ = part.partition("=")
        field = field.strip()
        if not part.strip():
            errors.append(f"part {number} is empty (a stray comma)")
        elif not equals:
            errors.append(f"{where} is not field=value (no '=')")
        elif not field:
            errors.append(f"{where} has no field before '='")
        elif any(c.isspace() for c in field):
            errors.append(f"{where}: field {field!r} holds a space")
        elif not all(_COMPONENT_RE.match(c) for c in field.split(".")):
            errors.append(f"{where}: field {field!r} has an empty component; separate nested "
                          "fields with single dots (platform_info.platform_name)")
    return errors


@rule("MIM506", "error", "requiredAttributes is not a comma-separated list of field=value",
      "3.11.4")
def malformed_required_attributes(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CredentialProfile"):
        text = document.model.spec.mdm_restrictions.required_attributes
        if text is None:
            continue
        errors = required_attribute_errors(text)
        if errors:
            yield Finding(document, (*_PATH, "requiredAttributes"),
                          f"{'; '.join(errors)} (write field=value[,field=value...], e.g. "
                          "jailBroken=False,platform_info.platform_name=iOS)")


@rule("MIM507", "error", "MDM restrictions on a profile whose cardEncoding is not IdentityAgent",
      "3.11.4")
def restrictions_need_identity_agent(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CredentialProfile"):
        spec = document.model.spec
        restrictions = spec.mdm_restrictions
        if spec.card_encoding == "IdentityAgent":
            continue
        if restrictions.status != "Unrestricted" or restrictions.external_system is not None \
                or restrictions.required_attributes is not None:
            yield Finding(document, _PATH,
                          f"MDM restrictions apply only to IdentityAgent profiles, and this one's "
                          f"cardEncoding is {spec.card_encoding}: set cardEncoding: "
                          "IdentityAgent, or remove mdmRestrictions")


def _port(url: str) -> tuple[int | None, str | None]:
    """The explicit port of a URL (None without one), or the reason it is not a port."""
    try:
        return urlsplit(url).port, None
    except ValueError as error:
        return None, str(error)


@rule("MIM508", "error", "BlackBerry UserPassword authentication on a cloud base URL", "3.11.3")
def blackberry_cloud_password(ctx: RuleContext) -> Iterator[Finding]:
    """Cloud UEM is reached on port 443 (an https URL without a port means 443)."""
    for document in ctx.of_kind("ExternalSystem"):
        spec = document.model.spec
        if spec.listener_type != "BlackBerry" or spec.authentication != "UserPassword":
            continue
        port, error = _port(spec.base_url)
        if error is not None:
            continue  # MIM509 reports it
        cloud = port == 443 or (port is None and urlsplit(spec.base_url).scheme == "https")
        if cloud:
            yield Finding(document, ("spec", "authentication"),
                          f"baseUrl {spec.base_url} is a cloud UEM address (port 443), and cloud "
                          "UEM accepts only certificate authentication: use authentication "
                          "Certificate (clientId, clientCertificate), or the on-premises "
                          "address with port 18084")


@rule("MIM509", "warning", "A BlackBerry baseUrl without an explicit port", "3.11.3")
def blackberry_port(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("ExternalSystem"):
        spec = document.model.spec
        if spec.listener_type != "BlackBerry":
            continue
        port, error = _port(spec.base_url)
        if error is not None:
            yield Finding(document, ("spec", "baseUrl"),
                          f"baseUrl {spec.base_url}: {error}; write :18084 for UEM on premises "
                          "or :443 for UEM in the cloud")
        elif port is None:
            yield Finding(document, ("spec", "baseUrl"),
                          f"baseUrl {spec.base_url} has no port: write :18084 for UEM on "
                          "premises or :443 for UEM in the cloud")
