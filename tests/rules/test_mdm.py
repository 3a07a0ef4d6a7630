"""MIM5xx: MDM restrictions of credential profiles, and the MDM external systems.

Each case breaks BASE as little as possible, asserts the rule's exact findings, and checks that
the fixed configuration draws none from that rule.
"""

from __future__ import annotations

import textwrap

import pytest

from reconciler.rules.mdm import required_attribute_errors
from tests.rules.base import BASE, changed, findings

PROFILES, SYSTEMS = "profiles.yaml", "systems.yaml"
P = "profiles.yaml:{}: CredentialProfile/mobile-standard: {}"
END = "    canUnlock: [Helpdesk]\n"  # the last line of BASE's profile
ENCODING = "  cardEncoding: IdentityAgent\n"


def mdm(*lines: str) -> dict[str, tuple[str, str]]:
    """BASE's profile with mdmRestrictions holding `lines`."""
    return {PROFILES: (END, END + "  mdmRestrictions:\n"
                       + "".join(f"    {line}\n" for line in lines))}


def profile(*replacements: tuple[str, str], add: dict[str, str] | None = None) -> dict:
    """BASE with several replacements in its profile, as `changed(...)` keyword arguments."""
    text = textwrap.dedent(BASE[PROFILES]).lstrip("\n")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    return {"remove": (PROFILES,), "add": {PROFILES: text, **(add or {})}}


def intune(name: str = "Intune", enabled: bool = True) -> str:
    return (f"apiVersion: mim/v1\nkind: ExternalSystem\nmetadata:\n  name: {name}\nspec:\n"
            f"  listenerType: Intune\n  enabled: {str(enabled).lower()}\n  tenantId: t-1\n"
            "  clientId: c-1\n  clientSecret: {env: INTUNE_CLIENT_SECRET}\n")


def with_systems(*systems: str) -> dict[str, str]:
    return {"mdm.yaml": "---\n".join(systems)}


def blackberry(base_url: str, password: bool = False) -> dict[str, str]:
    auth = ("  authentication: UserPassword\n  username: mim\n  password: {env: UEM_PASSWORD}\n"
            if password else
            "  authentication: Certificate\n  clientId: mim-connector\n"
            "  clientCertificate: {file: /etc/mim/uem.pfx}\n")
    return {"uem.yaml": "apiVersion: mim/v1\nkind: ExternalSystem\nmetadata:\n  name: UEM\n"
            f"spec:\n  listenerType: BlackBerry\n  baseUrl: {base_url}\n  tenantId: S12345678\n"
            + auth}


B = "uem.yaml:{}: ExternalSystem/UEM: {}"
REGISTERED = ("status: MustBeRegistered",)
ASK = "externalSystem: Intune"

CASES = [
    pytest.param(
        "MIM503", changed(mdm(*REGISTERED)),
        [P.format("20:5", "spec.mdmRestrictions.externalSystem: status MustBeRegistered needs "
                  "the MDM system to ask; no enabled MDM ExternalSystem (Intune, WorkspaceOne, "
                  "BlackBerry) exists: add one and name it")],
        changed(mdm(*REGISTERED), add=with_systems(intune())), id="MIM503-auto-selected"),
    pytest.param(
        "MIM503", changed(mdm("status: MustNotBeRegistered"),
                          add=with_systems(intune(), intune("Intune B"), intune("Old", False))),
        [P.format("20:5", "spec.mdmRestrictions.externalSystem: status MustNotBeRegistered "
                  "needs the MDM system to ask; name one of the enabled MDM systems: Intune, "
                  "Intune B")],
        changed(mdm("status: MustNotBeRegistered", ASK),
                add=with_systems(intune(), intune("Intune B"))), id="MIM503-two-systems"),
    pytest.param(
        "MIM504", changed(mdm(*REGISTERED, "externalSystem: Mail")),
        [P.format("21:21", "spec.mdmRestrictions.externalSystem: 'Mail' is a Smtp system, not "
                  "an MDM: name an Intune, WorkspaceOne or BlackBerry system")],
        changed(mdm(*REGISTERED, ASK), add=with_systems(intune())), id="MIM504-not-mdm"),
    pytest.param(
        "MIM504", changed(mdm(*REGISTERED, ASK), add=with_systems(intune(enabled=False))),
        [P.format("21:21", "spec.mdmRestrictions.externalSystem: 'Intune' is disabled, so "
                  "every collection would fail its MDM check: enable it or name an enabled MDM "
                  "system")],
        changed(mdm(*REGISTERED, ASK), add=with_systems(intune())), id="MIM504-disabled"),
    pytest.param(
        "MIM505", changed(mdm("requiredAttributes: jailBroken=False")),
        [P.format("20:25", "spec.mdmRestrictions.requiredAttributes: required MDM attributes "
                  "are only checked for status MustBeRegistered, not Unrestricted: set status "
                  "MustBeRegistered or remove requiredAttributes")],
        changed(mdm(*REGISTERED, ASK, "requiredAttributes: jailBroken=False"),
                add=with_systems(intune())), id="MIM505"),
    pytest.param(
        "MIM506", changed(mdm(*REGISTERED, ASK, "requiredAttributes: jailBroken=False,,"
                              "platform_info..platform_name=iOS, os version=17,compliant"),
                          add=with_systems(intune())),
        [P.format("22:25", "spec.mdmRestrictions.requiredAttributes: part 2 is empty (a stray "
                  "comma); part 3 'platform_info..platform_name=iOS': field "
                  "'platform_info..platform_name' has an empty component; separate nested "
                  "fields with single dots (platform_info.platform_name); part 4 'os "
                  "version=17': field 'os version' holds a space; part 5 'compliant' is not "
                  "field=value (no '=') (write field=value[,field=value...], e.g. "
                  "jailBroken=False,platform_info.platform_name=iOS)")],
        changed(mdm(*REGISTERED, ASK, "requiredAttributes: jailBroken=False, "
                    "platform_info.platform_name=iOS"), add=with_systems(intune())),
        id="MIM506"),
    pytest.param(
        "MIM507", changed(**profile(mdm(*REGISTERED, ASK)[PROFILES],
                                    (ENCODING, "  cardEncoding: SoftwareCertificates\n"),
                                    add=with_systems(intune()))),
        [P.format("20:5", "spec.mdmRestrictions: MDM restrictions apply only to IdentityAgent "
                  "profiles, and this one's cardEncoding is SoftwareCertificates: set "
                  "cardEncoding: IdentityAgent, or remove mdmRestrictions")],
        changed(mdm(*REGISTERED, ASK), add=with_systems(intune())), id="MIM507"),
    pytest.param(
        "MIM508", changed(add=blackberry("https://uem.example.com:443", password=True)),
        [B.format("9:19", "spec.authentication: baseUrl https://uem.example.com:443 is a cloud "
                  "UEM address (port 443), and cloud UEM accepts only certificate "
                  "authentication: use authentication Certificate (clientId, "
                  "clientCertificate), or the on-premises address with port 18084")],
        changed(add=blackberry("https://uem.example.com:18084", password=True)), id="MIM508"),
    pytest.param(
        "MIM509", changed(add=blackberry("https://uem.example.com")),
        [B.format("7:12", "spec.baseUrl: warning: baseUrl https://uem.example.com has no port: "
                  "write :18084 for UEM on premises or :443 for UEM in the cloud")],
        changed(add=blackberry("https://uem.example.com:443")), id="MIM509"),
]


def found(root, files, rule_id) -> list[str]:
    return [text.removeprefix(f"{root}/") for text in findings(root, files, rule_id)]


@pytest.mark.parametrize(("rule_id", "broken", "expected", "fixed"), CASES)
def test_rule_finds_the_mistake_and_not_its_fix(tmp_path, rule_id, broken, expected,
                                                 fixed) -> None:
    assert found(tmp_path / "broken", broken, rule_id) == expected
    assert found(tmp_path / "fixed", fixed, rule_id) == []


def test_an_https_url_without_a_port_is_the_cloud(tmp_path) -> None:
    files = changed(add=blackberry("https://uem.example.com", password=True))
    assert [text.split(": ", 3)[2] for text in found(tmp_path, files, "MIM508")] == [
        "spec.authentication"]


@pytest.mark.parametrize(("text", "errors"), [
    ("jailBroken=False", []),
    ("complianceState=compliant, isEncrypted=true,owner=", []),
    ("a.b.c=x=y", []),
    ("  ", ["it is empty: remove it, or write field=value[,field=value...]"]),
    ("=x", ["'=x' has no field before '='"]),
    (".a=x,a.=y", ["part 1 '.a=x': field '.a' has an empty component; separate nested fields "
                   "with single dots (platform_info.platform_name)",
                   "part 2 'a.=y': field 'a.' has an empty component; separate nested fields "
                   "with single dots (platform_info.platform_name)"]),
    ("a=b,", ["part 2 is empty (a stray comma)"]),
])
def test_required_attribute_parts(text, errors) -> None:
    assert required_attribute_errors(text) == errors
