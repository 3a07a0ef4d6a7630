"""MIM4xx: the roles a credential profile grants, and the workflows and logon they need.

Each case breaks BASE as little as possible, asserts the rule's exact findings, and checks that
the fixed configuration draws none from that rule.
"""

from __future__ import annotations

import pytest

from tests.rules.base import changed, findings, problems

RECEIVER = "Collect My Updates, Issue Device, Request My ID"
OPERATOR = "Request ID, Unlock Credential, Cancel Credential, Validate Request"
P = "profiles.yaml:{}: CredentialProfile/mobile-standard: {}"


def roles(receiver: str = RECEIVER, operator: str = OPERATOR, logon: str = "Password",
          add: dict[str, str] | None = None, **kwargs) -> dict[str, str]:
    """BASE with other workflows for PasswordUser (receiver) or Helpdesk (operator), or other
    logon mechanisms for PasswordUser; `add` and `kwargs` as for `changed`."""
    return changed(add={**(add or {}), "roles.yaml": f"""
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: PasswordUser
        spec:
          workflows: [{receiver}]
          logonMechanisms: [{logon}]
        ---
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: Helpdesk
        spec:
          workflows: [{operator}]
          logonMechanisms: [Password]
          scope: All
        """}, **kwargs)


def collect_message(workflow: str) -> str:
    return P.format("14:5", f"spec.roles: no role in canReceive or canCollect has both the "
                    f"{workflow} workflow and Password logon, so the device's collection is "
                    "refused with an access-denied error: add the workflow to such a role (e.g. "
                    "PasswordUser), or add such a role to the profile")


NO_REQUESTER = {"receiver": "Collect My Updates, Issue Device",
                "operator": "Unlock Credential, Cancel Credential, Validate Request"}
SECOND_REQUEST = """
    apiVersion: mim/v1
    kind: MobileRequest
    metadata:
      name: bob-phone
    spec:
      person: bob
      credentialProfile: mobile-standard
    """


def requests_finding(count: str) -> str:
    return (f"requests.yaml:1:1: MobileRequest/alice-phone: {count}, but no role has the Request "
            "ID or Request My ID workflow, so nobody may make one: add Request ID (for "
            "operators) or Request My ID (for self-service) to a role")


CASES = [
    pytest.param(
        "MIM401", roles(receiver="Collect My Updates, Request My ID"),
        [P.format("14:18", "spec.roles.canReceive[0]: role 'PasswordUser' is in canReceive but "
                  "lacks the Issue Device workflow, so its holders cannot receive this mobile "
                  "ID: add Issue Device to the role")],
        roles(), id="MIM401"),
    pytest.param(
        "MIM402", changed({"profiles.yaml": ("    canCollect: [PasswordUser]\n", "")}),
        [P.format("14:18", "spec.roles.canReceive[0]: role 'PasswordUser' may receive this "
                  "mobile ID but is not in canCollect, so its holders cannot collect it on their "
                  "device: add 'PasswordUser' to canCollect")],
        changed(), id="MIM402"),
    pytest.param(
        "MIM403", roles(logon="Smart Card"),
        [collect_message("Collect My Updates"), collect_message("Issue Device")],
        roles(logon="Smart Card, Password"), id="MIM403-logon"),
    pytest.param(
        "MIM403", roles(receiver="Issue Device, Request My ID"),
        [collect_message("Collect My Updates")],
        # Collecting through a second role is enough.
        roles(receiver="Issue Device, Request My ID",
              operator="Request ID, Unlock Credential, Validate Request, Collect My Updates",
              replace={"profiles.yaml": ("canCollect: [PasswordUser]",
                                         "canCollect: [PasswordUser, Helpdesk]")}),
        id="MIM403-workflow"),
    pytest.param(
        "MIM404", roles(operator="Request ID, Cancel Credential, Validate Request"),
        [P.format("18:17", "spec.roles.canUnlock[0]: role 'Helpdesk' is in canUnlock but lacks "
                  "the Unlock Credential workflow, so its holders cannot give out unlock codes: "
                  "add Unlock Credential to the role")],
        roles(), id="MIM404"),
    pytest.param(
        "MIM405", roles(**NO_REQUESTER),
        [requests_finding("a mobile request exists")],
        roles(**{**NO_REQUESTER, "receiver": RECEIVER}), id="MIM405"),
    pytest.param(
        "MIM405", roles(**NO_REQUESTER, add={"requests2.yaml": SECOND_REQUEST}),
        [requests_finding("2 mobile requests exist")],
        # Without requests, nobody needs to make one.
        roles(**NO_REQUESTER, remove=("requests.yaml",)), id="MIM405-no-requests"),
    pytest.param(
        "MIM406", roles(operator="Request ID, Unlock Credential, Cancel Credential"),
        [P.format("17:19", "spec.roles.canValidate[0]: role 'Helpdesk' is in canValidate but "
                  "lacks the Validate Request workflow, so its holders cannot approve its "
                  "requests: add Validate Request to the role")],
        roles(), id="MIM406"),
]


def found(root, files, rule_id) -> list[str]:
    """The rule's findings with file names relative to the repository."""
    return [text.removeprefix(f"{root}/") for text in findings(root, files, rule_id)]


@pytest.mark.parametrize(("rule_id", "broken", "expected", "fixed"), CASES)
def test_rule_finds_the_mistake_and_not_its_fix(tmp_path, rule_id, broken, expected,
                                                 fixed) -> None:
    assert found(tmp_path / "broken", broken, rule_id) == expected
    assert found(tmp_path / "fixed", fixed, rule_id) == []


def test_unknown_roles_are_left_to_the_reference_check(tmp_path) -> None:
    listed = problems(tmp_path, changed(remove=("roles.yaml",)))
    assert {p.field_path for p in listed if p.kind == "CredentialProfile"} == {
        f"spec.roles.{option}[{index}]" for option, index in (
            ("canReceive", 0), ("canCollect", 0), ("canRequest", 0), ("canRequest", 1),
            ("canValidate", 0), ("canUnlock", 0))}
    assert {p.code for p in listed if p.kind == "CredentialProfile"} == {"reference"}


def test_a_profile_nobody_receives_or_collects_has_no_collection_to_refuse(tmp_path) -> None:
    receivers = "    canReceive: [PasswordUser]\n    canCollect: [PasswordUser]\n"
    files = changed({"profiles.yaml": (receivers, "")})
    assert found(tmp_path, files, "MIM403") == []
