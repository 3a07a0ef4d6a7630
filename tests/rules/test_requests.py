"""MIM7xx: pending mobile requests, their people, requesters, devices and delivery.

Each case breaks BASE as little as possible, asserts the rule's exact findings, and checks that
the fixed configuration draws none from that rule.
"""

from __future__ import annotations

import pytest

from tests.rules.base import changed, findings

REQUESTS, PEOPLE, PROFILES, ROLES = "requests.yaml", "people.yaml", "profiles.yaml", "roles.yaml"
R = "requests.yaml:{}: MobileRequest/alice-phone: {}"
CONTACT = '  email: alice@example.com\n  cell: "00447700900123"\n'
DELIVERY = "  delivery: Email\n"
BY = "  requestedBy: bob\n"
HELPDESK = "  workflows: [Request ID, Unlock Credential, Cancel Credential, Validate Request]\n"
USER_WORKFLOWS = "  workflows: [Collect My Updates, Issue Device, Request My ID]\n"
ISSUANCE = "  issuance:\n    notificationScheme: Default\n"


def delivery(how: str) -> dict[str, tuple[str, str]]:
    return {REQUESTS: (DELIVERY, f"  delivery: {how}\n")}


def device(owner: str) -> dict[str, str]:
    return {"devices.yaml": f"""
        apiVersion: mim/v1
        kind: Device
        metadata:
          name: old-phone
        spec:
          serialNumber: F2LXK0ABCD12
          platform: ios
          owner: {owner}
        """}


REPLACE = {REQUESTS: (BY, BY + "  kind: Replace\n  device: F2LXK0ABCD12\n")}

CASES = [
    pytest.param(
        "MIM702", changed({PEOPLE: (CONTACT, "")}),
        [R.format("6:11", "spec.person: person 'alice' has neither a cell number nor an e-mail "
                  "address, so no notification can reach them: add spec.cell or spec.email to "
                  "Person/alice")],
        changed({PEOPLE: (CONTACT, '  cell: "00447700900123"\n')}), id="MIM702"),
    pytest.param(
        "MIM703", changed({PEOPLE: (CONTACT, '  cell: "00447700900123"\n')}),
        [R.format("9:13", "spec.delivery: delivery Email needs an e-mail address and person "
                  "'alice' has none: add spec.email to Person/alice, or deliver by Sms")],
        changed({PEOPLE: (CONTACT, '  cell: "00447700900123"\n'), **delivery("Sms")}),
        id="MIM703"),
    pytest.param(
        "MIM704", changed({**delivery("QrCode"),
                           PROFILES: (ISSUANCE, ISSUANCE + "    validateIssuance: true\n")}),
        [R.format("9:13", "spec.delivery: profile 'mobile-standard' requires validation "
                  "(validateIssuance), so no QR code can be shown when the request is made: "
                  "deliver by Email or Sms")],
        changed(delivery("QrCode")), id="MIM704"),
    pytest.param(
        "MIM705", changed({REQUESTS: ("  person: alice\n", "  person: bob\n")}),
        [R.format("6:11", "spec.person: person 'bob' (roles: Helpdesk) holds no role in the "
                  "profile's canReceive (PasswordUser) nor in its canCollect (PasswordUser); "
                  "receiving needs both: give 'bob' such a role or add one of its roles to "
                  "CredentialProfile/mobile-standard")],
        changed(), id="MIM705"),
    pytest.param(
        "MIM706", changed({PROFILES: ("canRequest: [Helpdesk, PasswordUser]",
                                      "canRequest: [PasswordUser]")}),
        [R.format("8:16", "spec.requestedBy: 'bob' (roles: Helpdesk) holds no role in "
                  "canRequest of profile 'mobile-standard' (PasswordUser): give 'bob' such a "
                  "role or add one of theirs to canRequest")],
        # Without requestedBy the applying actor requests: nothing to check.
        changed({PROFILES: ("canRequest: [Helpdesk, PasswordUser]", "canRequest: [PasswordUser]"),
                 REQUESTS: (BY, "")}), id="MIM706"),
    pytest.param(
        "MIM707", changed({ROLES: (HELPDESK, HELPDESK.replace("Request ID, ", ""))}),
        [R.format("8:16", "spec.requestedBy: 'bob' (roles: Helpdesk) holds no role with the "
                  "Request ID workflow, which an Issue request for another person needs: add "
                  "Request ID to one of their roles")],
        changed({ROLES: (HELPDESK, HELPDESK.replace("Request ID, ", "")), REQUESTS: (BY, "")}),
        id="MIM707-request-id"),
    pytest.param(
        "MIM707", changed({ROLES: (USER_WORKFLOWS, USER_WORKFLOWS.replace(", Request My ID", "")),
                           REQUESTS: (BY, "  requestedBy: alice\n")}),
        [R.format("8:16", "spec.requestedBy: 'alice' (roles: PasswordUser) holds no role with "
                  "the Request My ID workflow, which an Issue request for oneself needs: add "
                  "Request My ID to one of their roles")],
        changed({REQUESTS: (BY, "  requestedBy: alice\n")}), id="MIM707-request-my-id"),
    pytest.param(
        "MIM707", changed({ROLES: ("  scope: All\n", "  scope: Self\n")}),
        [R.format("8:16", "spec.requestedBy: 'bob' has Request ID only in roles of scope Self, "
                  "which reach their own record only, not 'alice''s: widen the scope of such a "
                  "role (Department, Division or All)")],
        changed({ROLES: ("  scope: All\n", "  scope: Department\n")}), id="MIM707-scope"),
    pytest.param(
        "MIM707", changed({**REPLACE, ROLES: (HELPDESK, HELPDESK.replace(
            "Request ID", "Request ID, Request Update"))}, add=device("alice")),
        [R.format("8:16", "spec.requestedBy: 'bob' (roles: Helpdesk) holds no role with the "
                  "Request Replacement ID workflow, which a Replace request for another person "
                  "needs: add Request Replacement ID to one of their roles")],
        changed({**REPLACE, ROLES: (HELPDESK, HELPDESK.replace(
            "Request ID", "Request ID, Request Replacement ID"))}, add=device("alice")),
        id="MIM707-replace"),
    pytest.param(
        "MIM708", changed(REPLACE, add=device("bob")),
        [R.format("10:11", "spec.device: Device/old-phone belongs to 'bob', not to 'alice': "
                  "name one of 'alice''s devices, or make the request for 'bob'")],
        changed(REPLACE, add=device("alice")), id="MIM708"),
    pytest.param(
        "MIM709", changed({PROFILES: ("  cardFormat: Mobile\n", "  mobileDeviceRestrictions: "
                                      "KnownMobiles\n  cardFormat: Mobile\n")}),
        ["profiles.yaml:9:29: CredentialProfile/mobile-standard: spec.mobileDeviceRestrictions: "
         "warning: KnownMobiles accepts only registered devices and no Device document exists: "
         "register the devices (kind Device, or the AddDevice API) or choose Any"],
        changed({PROFILES: ("  cardFormat: Mobile\n", "  mobileDeviceRestrictions: "
                            "KnownMobiles\n  cardFormat: Mobile\n")}, add=device("alice")),
        id="MIM709"),
    pytest.param(
        "MIM710", changed({PROFILES: ("notificationScheme: Default", "notificationScheme: None")}),
        [R.format("9:13", "spec.delivery: profile 'mobile-standard' has notification scheme "
                  "None, which sends nothing, so delivery Email cannot happen: deliver by "
                  "ShowCode or QrCode, or choose another scheme")],
        changed({PROFILES: ("notificationScheme: Default", "notificationScheme: None"),
                 **delivery("ShowCode")}), id="MIM710"),
    pytest.param(
        "MIM711", changed({**delivery("Sms"), PROFILES: (
            "notificationScheme: Default", "notificationScheme: MobileOnlyAuthCodeViaEmail")}),
        [R.format("9:13", "spec.delivery: profile 'mobile-standard' sends the code by e-mail "
                  "only (MobileOnlyAuthCodeViaEmail), so delivery Sms cannot happen: deliver "
                  "by Email, or choose scheme MobileOnlyAuthCodeViaSms")],
        changed({**delivery("Sms"), PROFILES: (
            "notificationScheme: Default", "notificationScheme: MobileOnlyAuthCodeViaSms")}),
        id="MIM711"),
    pytest.param(
        "MIM712", changed({PEOPLE: ("  roles: [Helpdesk]\n", "  roles: [Helpdesk]\n"
                                    "  enabled: false\n")}),
        [R.format("8:16", "spec.requestedBy: person 'bob' is disabled and cannot request a "
                  "mobile ID: enable Person/bob or remove the request")],
        changed(), id="MIM712"),
]


def found(root, files, rule_id) -> list[str]:
    return [text.removeprefix(f"{root}/") for text in findings(root, files, rule_id)]


@pytest.mark.parametrize(("rule_id", "broken", "expected", "fixed"), CASES)
def test_rule_finds_the_mistake_and_not_its_fix(tmp_path, rule_id, broken, expected,
                                                 fixed) -> None:
    assert found(tmp_path / "broken", broken, rule_id) == expected
    assert found(tmp_path / "fixed", fixed, rule_id) == []
