"""Rules: the roles credential profiles grant, and the workflows they need (MIM4xx).

A profile's role lists say who may receive, collect, request, validate and unlock; each of those
only works when the role also has the matching workflow (and, for the device's own calls,
Password logon). A role name that resolves to no document is the reference check's finding;
these rules skip it. Each check indexes the roles once, then walks the profiles a single time.
"""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.rules.registry import Finding, RuleContext, rule
from specs.role import RoleSpec

ISSUE_DEVICE = "Issue Device"
COLLECT_MY_UPDATES = "Collect My Updates"
PASSWORD = "Password"


def _roles(ctx: RuleContext) -> dict[str, RoleSpec]:
    return {document.name: ctx.spec(document) for document in ctx.of_kind("Role")}


def _missing_workflow(ctx: RuleContext, option: str, attribute: str, workflow: str,
                      what: str, mobile_only: bool = False) -> Iterator[Finding]:
    """Every role of a profile's `option` list that lacks `workflow`."""
    roles = {name: set(spec.workflows) for name, spec in _roles(ctx).items()}
    for document, spec in ctx.profiles(mobile_only):
        for index, name in enumerate(getattr(spec.roles, attribute)):
            workflows = roles.get(name)
            if workflows is not None and workflow not in workflows:
                yield Finding(document, ("spec", "roles", option, index),
                              f"role {name!r} is in {option} but lacks the {workflow} workflow, "
                              f"so its holders cannot {what}: add {workflow} to the role")


@rule("MIM401", "error",
      "A role that may receive an Identity Agent profile lacks the Issue Device workflow", "3.8.1")
def receiver_without_issue_device(ctx: RuleContext) -> Iterator[Finding]:
    yield from _missing_workflow(ctx, "canReceive", "can_receive", ISSUE_DEVICE,
                                 "receive this mobile ID", mobile_only=True)


@rule("MIM402", "error",
      "A role may receive an Identity Agent profile but not collect it (receivers need both)",
      "3.8.1")
def receiver_cannot_collect(ctx: RuleContext) -> Iterator[Finding]:
    roles = _roles(ctx)
    for document, spec in ctx.profiles(mobile_only=True):
        collectors = set(spec.roles.can_collect)
        for index, name in enumerate(spec.roles.can_receive):
            if name in roles and name not in collectors:
                yield Finding(document, ("spec", "roles", "canReceive", index),
                              f"role {name!r} may receive this mobile ID but is not in "
                              "canCollect, so its holders cannot collect it on their device: add "
                              f"{name!r} to canCollect")


@rule("MIM403", "error",
      "Collect My Updates or Issue Device is not reachable through a receiving or collecting "
      "role with Password logon", "3.3")
def collection_needs_password_role(ctx: RuleContext) -> Iterator[Finding]:
    roles = _roles(ctx)
    for document, spec in ctx.profiles(mobile_only=True):
        names = [*spec.roles.can_receive, *spec.roles.can_collect]
        if not names or any(name not in roles for name in names):
            continue  # no receiver yet, or an unknown role (a reference error) might grant it
        reachable: set[str] = set()
        for name in names:
            if PASSWORD in roles[name].logon_mechanisms:
                reachable.update(roles[name].workflows)
        for workflow in (COLLECT_MY_UPDATES, ISSUE_DEVICE):
            if workflow not in reachable:
                yield Finding(document, ("spec", "roles"),
                              f"no role in canReceive or canCollect has both the {workflow} "
                              f"workflow and {PASSWORD} logon, so the device's collection is "
                              "refused with an access-denied error: add the workflow to such a "
                              "role (e.g. PasswordUser), or add such a role to the profile")


@rule("MIM404", "error", "A role that may unlock a profile lacks the Unlock Credential workflow",
      "5.5")
def unlocker_without_workflow(ctx: RuleContext) -> Iterator[Finding]:
    yield from _missing_workflow(ctx, "canUnlock", "can_unlock", "Unlock Credential",
                                 "give out unlock codes")


@rule("MIM405", "error", "Mobile requests exist but no role has Request ID or Request My ID",
      "4.2.1")
def requests_without_request_workflow(ctx: RuleContext) -> Iterator[Finding]:
    requests = ctx.by_kind.get("MobileRequest", {})
    first = next(iter(requests.values()), None)
    if first is None:
        return
    if any({"Request ID", "Request My ID"} & set(spec.workflows)
           for spec in _roles(ctx).values()):
        return
    count = f"{len(requests)} mobile requests exist" if len(requests) > 1 else \
        "a mobile request exists"
    yield Finding(first, (),
                  f"{count}, but no role has the Request ID or Request My ID workflow, so nobody "
                  "may make one: add Request ID (for operators) or Request My ID (for "
                  "self-service) to a role")


@rule("MIM406", "error",
      "A role that may validate a profile's requests lacks the Validate Request workflow", "3.8.1")
def validator_without_workflow(ctx: RuleContext) -> Iterator[Finding]:
    yield from _missing_workflow(ctx, "canValidate", "can_validate", "Validate Request",
                                 "approve its requests")
