"""Rules: pending requests (MIM7xx), manual §4 and §5.

Checks look people, profiles, roles and devices up by name (dict look-ups built once per check),
so a check costs one pass over the requests. A request whose person, profile or requester does
not exist is a reference error already; the rules skip what they cannot look up.

Who makes a request: `requestedBy` names the Person who asks. When it is empty, the request is
made by whoever applies the configuration (the pipeline or operator running `mimctl reconcile
--apply`, who need not be a Person and is not known at plan time), so the requester's checks
(MIM706, MIM707) are skipped; the person's own checks still run. `requestedBy` equal to the
person is a self-service request (Request My ID).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.load import Source, SpecDocument
from reconciler.rules.registry import REGISTRY, Finding, RuleContext, rule
from specs import Document

# The workflow a requester needs, by request kind; Issue depends on whom it is for.
_WORKFLOW = {"Replace": "Request Replacement ID", "Update": "Request Update",
             "Renew": "Request Device Renewal"}


def _requests(ctx: RuleContext) -> Iterator[tuple[SpecDocument, Any, Any]]:
    """(request document, its spec, the person's spec) for requests whose person exists."""
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        person = ctx.get("Person", spec.person)
        if person is not None:
            yield document, spec, person.model.spec


@rule("MIM702", "error", "The person of a request has neither a cell number nor an e-mail address",
      "7.4")
def unreachable_person(ctx: RuleContext) -> Iterator[Finding]:
    for document, spec, person in _requests(ctx):
        if person.cell is None and person.email is None:
            yield Finding(document, ("spec", "person"),
                          f"person {spec.person!r} has neither a cell number nor an e-mail "
                          "address, so no notification can reach them: add spec.cell or "
                          f"spec.email to Person/{spec.person}")


@rule("MIM703", "error", "Delivery by Sms without a cell number, or by Email without an e-mail "
      "address", "4.2.1")
def delivery_channel_missing(ctx: RuleContext) -> Iterator[Finding]:
    for document, spec, person in _requests(ctx):
        if person.cell is None and person.email is None:
            continue  # MIM702
        if spec.delivery == "Sms" and person.cell is None:
            yield Finding(document, ("spec", "delivery"),
                          f"delivery Sms needs a cell number and person {spec.person!r} has "
                          f"none: add spec.cell to Person/{spec.person}, or deliver by Email")
        elif spec.delivery == "Email" and person.email is None:
            yield Finding(document, ("spec", "delivery"),
                          f"delivery Email needs an e-mail address and person {spec.person!r} "
                          f"has none: add spec.email to Person/{spec.person}, or deliver by Sms")


@rule("MIM704", "error", "QrCode delivery on a profile that requires validation", "4.3")
def qr_code_with_validation(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        if spec.delivery != "QrCode":
            continue
        profile = ctx.get("CredentialProfile", spec.credential_profile)
        if profile is not None and profile.model.spec.issuance.validate_issuance:
            yield Finding(document, ("spec", "delivery"),
                          f"profile {spec.credential_profile!r} requires validation "
                          "(validateIssuance), so no QR code can be shown when the request is "
                          "made: deliver by Email or Sms")


@rule("MIM705", "error", "The person of a request holds no role that can receive, or none that "
      "can collect, the profile", "3.8.1")
def person_cannot_receive(ctx: RuleContext) -> Iterator[Finding]:
    for document, spec, person in _requests(ctx):
        profile = ctx.get("CredentialProfile", spec.credential_profile)
        if profile is None:
            continue
        roles = profile.model.spec.roles
        held = set(person.roles)
        missing = [f"{label} ({', '.join(names) or 'no roles'})"
                   for label, names in (("canReceive", roles.can_receive),
                                        ("canCollect", roles.can_collect))
                   if held.isdisjoint(names)]
        if missing:
            yield Finding(document, ("spec", "person"),
                          f"person {spec.person!r} (roles: {', '.join(person.roles) or 'none'}) "
                          f"holds no role in the profile's {' nor in its '.join(missing)}; "
                          f"receiving needs both: give {spec.person!r} such a role or add one of "
                          f"its roles to CredentialProfile/{spec.credential_profile}")


def _requester(ctx: RuleContext, spec: Any) -> tuple[str, Any] | None:
    if spec.requested_by is None:
        return None
    requester = ctx.get("Person", spec.requested_by)
    return None if requester is None else (spec.requested_by, requester.model.spec)


@rule("MIM706", "error", "The requester holds no role in the profile's canRequest", "4.2.1")
def requester_cannot_request(ctx: RuleContext) -> Iterator[Finding]:
    """Skipped when requestedBy is empty (the applying actor requests; see the module)."""
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        found = _requester(ctx, spec)
        profile = ctx.get("CredentialProfile", spec.credential_profile)
        if found is None or profile is None:
            continue
        name, requester = found
        can_request = profile.model.spec.roles.can_request
        if set(requester.roles).isdisjoint(can_request):
            yield Finding(document, ("spec", "requestedBy"),
                          f"{name!r} (roles: {', '.join(requester.roles) or 'none'}) holds no "
                          f"role in canRequest of profile {spec.credential_profile!r} "
                          f"({', '.join(can_request) or 'no roles'}): give {name!r} such a role "
                          "or add one of theirs to canRequest")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True, slots=True)
class _Grant:
    workflows: frozenset[str]
    scope: str


@rule("MIM707", "error", "The requester's roles lack the workflow the request needs (Request ID, "
      "Request My ID for oneself, Request Replacement ID, Request Update, Request Device "
      "Renewal)", "4.2.1")
def requester_lacks_workflow(ctx: RuleContext) -> Iterator[Finding]:
    """An Issue request for another person needs Request ID in a role whose scope reaches
    beyond Self; one for oneself (requestedBy = person) needs Request My ID. Replace, Update
    and Renew need Request Replacement ID, Request Update and Request Device Renewal, again
    with a scope beyond Self when for another person. Skipped when requestedBy is empty (the
    applying actor requests; see the module).
    """
    grants = {d.name: _Grant(frozenset(d.model.spec.workflows), d.model.spec.scope)
              for d in ctx.of_kind("Role")}
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        found = _requester(ctx, spec)
        if found is None:
            continue
        name, requester = found
        self_service = name == spec.person
        workflow = _WORKFLOW.get(spec.kind, "Request My ID" if self_service else "Request ID")
        held = [grants[r] for r in requester.roles if r in grants]
        with_workflow = [g for g in held if workflow in g.workflows]
        if not with_workflow:
            whom = "for oneself" if self_service else "for another person"
            yield Finding(document, ("spec", "requestedBy"),
                          f"{name!r} (roles: {', '.join(requester.roles) or 'none'}) holds no "
                          f"role with the {workflow} workflow, which {_article(spec.kind)} "
                          f"{spec.kind} request {whom} needs: add {workflow} to one of their "
                          "roles")
        elif not self_service and all(g.scope == "Self" for g in with_workflow):
            yield Finding(document, ("spec", "requestedBy"),
                          f"{name!r} has {workflow} only in roles of scope Self, which reach "
                          f"their own record only, not {spec.person!r}'s: widen the scope of "
                          "such a role (Department, Division or All)")


@rule("MIM708", "error", "A Replace, Update or Renew request names a device owned by another "
      "person", "5.3")
def device_of_another_person(ctx: RuleContext) -> Iterator[Finding]:
    """The device is looked up as a Device name, then as a serial number."""
    by_serial: dict[str, SpecDocument] | None = None
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        if spec.device is None:
            continue
        device = ctx.get("Device", spec.device)
        if device is None:
            if by_serial is None:
                by_serial = {}
                for known in ctx.of_kind("Device"):
                    by_serial.setdefault(known.model.spec.serial_number, known)
            device = by_serial.get(spec.device)
        if device is None:
            continue
        owner = device.model.spec.owner
        if owner is not None and owner != spec.person:
            yield Finding(document, ("spec", "device"),
                          f"Device/{device.name} belongs to {owner!r}, not to {spec.person!r}: "
                          f"name one of {spec.person!r}'s devices, or make the request for "
                          f"{owner!r}")


@rule("MIM709", "warning", "A profile restricted to KnownMobiles while no Device is registered",
      "3.6")
def known_mobiles_without_devices(ctx: RuleContext) -> Iterator[Finding]:
    if ctx.of_kind("Device"):
        return
    for document in ctx.of_kind("CredentialProfile"):
        if document.model.spec.mobile_device_restrictions == "KnownMobiles":
            yield Finding(document, ("spec", "mobileDeviceRestrictions"),
                          "KnownMobiles accepts only registered devices and no Device document "
                          "exists: register the devices (kind Device, or the AddDevice API) or "
                          "choose Any")


@rule("MIM710", "error", "Email or Sms delivery on a profile whose notification scheme is None",
      "3.8.1")
def delivery_without_notifications(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        if spec.delivery not in ("Email", "Sms"):
            continue
        profile = ctx.get("CredentialProfile", spec.credential_profile)
        if profile is not None and profile.model.spec.issuance.notification_scheme == "None":
            yield Finding(document, ("spec", "delivery"),
                          f"profile {spec.credential_profile!r} has notification scheme None, "
                          f"which sends nothing, so delivery {spec.delivery} cannot happen: "
                          "deliver by ShowCode or QrCode, or choose another scheme")


@rule("MIM711", "error", "Sms delivery on a profile whose notification scheme sends the code "
      "by e-mail only", "3.4.1")
def sms_delivery_against_the_scheme(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        profile = ctx.get("CredentialProfile", spec.credential_profile)
        if spec.delivery != "Sms" or profile is None:
            continue
        if profile.model.spec.issuance.notification_scheme == "MobileOnlyAuthCodeViaEmail":
            yield Finding(document, ("spec", "delivery"),
                          f"profile {spec.credential_profile!r} sends the code by e-mail only "
                          "(MobileOnlyAuthCodeViaEmail), so delivery Sms cannot happen: "
                          "deliver by Email, or choose scheme MobileOnlyAuthCodeViaSms")


@rule("MIM712", "error", "A request for, or by, a disabled person", "4")
def disabled_person(ctx: RuleContext) -> Iterator[Finding]:
    """A disabled person can neither collect nor request (PersonSpec.enabled)."""
    for document in ctx.of_kind("MobileRequest"):
        spec = document.model.spec
        checks = [("person", spec.person, "collect")]
        if spec.requested_by not in (None, spec.person):
            checks.append(("requestedBy", spec.requested_by, "request"))
        for field, name, doing in checks:
            person = ctx.get("Person", name)
            if person is not None and not person.model.spec.enabled:
                yield Finding(document, ("spec", field),
                              f"person {name!r} is disabled and cannot {doing} a mobile ID: "
                              f"enable Person/{name} or remove the request")


def operator_request_errors(request: Document, related: Iterable[Document]) -> list[str]:
    """The MIM7xx errors of a request an operator makes without a document (the devices API,
    `mimctl device replace|renew`), checked against the applied objects it names.

    The same checks as at plan time, so a request that collection would refuse is refused when
    it is made; the requester's own checks (MIM706, MIM707, MIM712 for the requester) are the
    caller's, since an operator is known by an API key or by `--actor`, not by the document.
    Each error reads "[MIM7xx] message".
    """
    source = Source("(operator request)", Path("."), 0, 0, 0)
    documents = [SpecDocument(source, model) for model in (request, *related)]
    by_kind: dict[str, dict[str, SpecDocument]] = {}
    for document in documents:
        by_kind.setdefault(document.kind, {})[document.name] = document
    context = RuleContext(documents, by_kind)
    errors = []
    for entry in REGISTRY.values():
        if not entry.id.startswith("MIM7") or entry.severity != "error" or entry.check is None:
            continue
        errors += [f"[{entry.id}] {finding.message}" for finding in entry.check(context)
                   if finding is not None and finding.document is documents[0]]
    return errors
