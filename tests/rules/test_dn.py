"""MIM6xx: DN templates of DN policies and of Settings dnProcessor.default.

Each case breaks BASE as little as possible, asserts the rule's exact findings, and checks that
the fixed configuration draws none from that rule.
"""

from __future__ import annotations

import pytest

from tests.rules.base import changed, findings, problems

D = "dn.yaml:7:7: DnPolicy/signing: spec.dn: {}"
S = "settings.yaml:24:14: Settings/system: spec.dnProcessor.default: {}"
SIGNING = "  contentSigning:\n    authority: issuing-ca\n"
XU55 = {"people.yaml": ("  userPrincipalName: alice@example.com\n",
                        "  userPrincipalName: alice@example.com\n"
                        "  attributes: {Xu55: 'CN=Alice,OU=Staff,DC=example,DC=com'}\n")}


def policy(dn: str) -> dict[str, str]:
    """A DN policy for BASE's certificate policy (`dn` single-quoted in YAML)."""
    return {"dn.yaml": f"""
        apiVersion: mim/v1
        kind: DnPolicy
        metadata:
          name: signing
        spec:
          certificatePolicy: Mobile Signing
          dn: '{dn}'
        """}


def default(dn: str) -> dict[str, tuple[str, str]]:
    """Settings with dnProcessor.default."""
    return {"settings.yaml": (SIGNING, f"{SIGNING}  dnProcessor:\n    default: '{dn}'\n")}


CASES = [
    pytest.param(
        "MIM602", changed(add=policy("cn=[[People.FulName]], ou=[[Person.GroupName]], "
                                     "o=[[[People.Xu55]]]")),
        [D.format("[[People.FulName]]: unknown person field 'FulName'; did you mean "
                  "'FullName'? (fields: built-in LogonName, FullName, FirstName, LastName, Email, "
                  "Cell, UserPrincipalName, EmployeeId, GroupName, or a custom attribute declared "
                  "in a Person's spec.attributes)"),
         D.format("[[Person.GroupName]]: unknown entity 'Person'; only People (the person the "
                  "certificate is for) can be substituted, e.g. [[People.GroupName]]"),
         D.format("[[[People.Xu55]]]: unknown person field 'Xu55' (fields: built-in LogonName, "
                  "FullName, FirstName, LastName, Email, Cell, UserPrincipalName, EmployeeId, "
                  "GroupName, or a custom attribute declared in a Person's spec.attributes)")],
        changed(XU55, add=policy("cn=[[People.FullName]], ou=[[People.GroupName]], "
                                 "o=[[[People.Xu55]]]")), id="MIM602"),
    pytest.param(
        "MIM602", changed(default("cn=[[People.Nickname]]")),
        [S.format("[[People.Nickname]]: unknown person field 'Nickname' (fields: built-in "
                  "LogonName, FullName, FirstName, LastName, Email, Cell, UserPrincipalName, "
                  "EmployeeId, GroupName, or a custom attribute declared in a Person's "
                  "spec.attributes)")],
        # Names match case-insensitively, like the columns of the product's SQL view.
        changed(default("cn=[[people.fullname]]+uid=[[People.LOGONNAME]]")),
        id="MIM602-settings-default"),
    pytest.param(
        "MIM604", changed(add=policy("cn=[[People.FullName], o=Users")),
        [D.format("'[[People.FullName]' at position 4 is not closed with ]] (substitutions are "
                  "[[People.Field]], escaped, or [[[People.Field]]], raw)")],
        changed(add=policy("cn=[[People.FullName]], o=Users")), id="MIM604"),
    pytest.param(
        "MIM605", changed(add=policy("cx=[[People.FullName]], o=Users, c=uk")),
        [D.format("not a valid DN: unknown attribute type 'cx' (known: CN, O, OU, C, L, ST, DC, "
                  "UID, serialNumber, emailAddress, E, or a dotted OID)")],
        changed(add=policy("cn=[[People.FullName]], o=Users, c=uk")), id="MIM605"),
    pytest.param(
        # The manual's own example substitutes a whole DN with double brackets.
        "MIM605", changed(XU55, add=policy("[[People.Xu55]]")),
        [D.format("not a valid DN: [[People.Xu55]] stands where an RDN belongs, but an escaped "
                  "substitution can only be a value (type=[[People.Xu55]]); for a field that "
                  "holds DN text use [[[People.Xu55]]]")],
        changed(XU55, add=policy("[[[People.Xu55]]]")), id="MIM605-whole-dn-escaped"),
    pytest.param(
        "MIM605", changed(default("cn=Static DN, c=usa")),
        [S.format("not a valid DN: C='usa': C takes a two-letter country code (ISO 3166), e.g. "
                  "C=uk")],
        changed(default("cn=Static DN, c=us")), id="MIM605-country"),
]


def found(root, files, rule_id) -> list[str]:
    return [text.removeprefix(f"{root}/") for text in findings(root, files, rule_id)]


@pytest.mark.parametrize(("rule_id", "broken", "expected", "fixed"), CASES)
def test_rule_finds_the_mistake_and_not_its_fix(tmp_path, rule_id, broken, expected,
                                                 fixed) -> None:
    assert found(tmp_path / "broken", broken, rule_id) == expected
    assert found(tmp_path / "fixed", fixed, rule_id) == []


def test_bad_brackets_are_reported_once(tmp_path) -> None:
    files = changed(add=policy("cn=[[[People.Nickname]], cx=x"))
    assert [p.code for p in problems(tmp_path, files) if p.code.startswith("MIM6")] == ["MIM604"]


# --- MIM606: every certificate the service would issue needs a subject -----------------------

NO_DEFAULT = ("---\napiVersion: mim/v1\nkind: DnPolicy\nmetadata:\n  name: default\nspec:\n"
              "  default: true\n  dn: cn=[[People.FullName]], o=Example\n", "")
UNCOVERED = ("profiles.yaml:{line}:15: CredentialProfile/mobile-standard: "
             "spec.certificates[{index}].policy: certificate policy '{policy}' ({name}) has no "
             "DN policy and there is no default, so collection cannot name the certificate: add "
             "a DnPolicy with certificatePolicy: {name}, or one with default: true")
SIGNING_UNCOVERED = UNCOVERED.format(line=11, index=0, policy="mobile-signing",
                                     name="Mobile Signing")
ENCRYPTION = """
    apiVersion: mim/v1
    kind: CertificatePolicy
    metadata:
      name: mobile-encryption
    spec:
      friendlyName: Mobile Encryption
      authority: issuing-ca
      keyUsages: [keyEncipherment]
    """
TWO_CERTIFICATES = ("    - policy: mobile-signing\n      container: System Store\n",
                    "    - policy: mobile-signing\n      container: System Store\n"
                    "    - policy: mobile-encryption\n      container: System Store\n")


def without_default(replace: dict[str, tuple[str, str]] | None = None,
                    add: dict[str, str] | None = None) -> dict[str, str]:
    """BASE without its default DnPolicy, then changed as `changed` would."""
    return changed({"pki.yaml": NO_DEFAULT, **(replace or {})}, add)


def test_a_policy_without_dn_policy_or_default_is_found(tmp_path) -> None:
    assert found(tmp_path, without_default(), "MIM606") == [SIGNING_UNCOVERED]


@pytest.mark.parametrize("fixed", [
    pytest.param(without_default(add=policy("cn=[[People.FullName]], o=Example")),
                 id="dn-policy-for-its-friendly-name"),
    pytest.param(changed(), id="default-dn-policy"),
    pytest.param(without_default(default("cn=[[People.FullName]], o=Example")),
                 id="settings-dnprocessor-default"),
    pytest.param(without_default({"profiles.yaml": (
        "      container: System Store\n",
        "      container: System Store\n      mode: HistoricOnly\n")}),
        id="historic-only-issues-nothing"),
])
def test_a_covered_policy_is_not_found(tmp_path, fixed) -> None:
    assert found(tmp_path, fixed, "MIM606") == []


def test_a_dn_policy_covers_only_its_own_certificate_policy(tmp_path) -> None:
    files = without_default({"profiles.yaml": TWO_CERTIFICATES},
                            add={**policy("cn=[[People.FullName]], o=Example"),
                                 "encryption.yaml": ENCRYPTION})
    assert found(tmp_path, files, "MIM606") == [UNCOVERED.format(
        line=13, index=1, policy="mobile-encryption", name="Mobile Encryption")]


def test_a_dn_policy_for_another_friendly_name_does_not_cover(tmp_path) -> None:
    other = policy("cn=[[People.FullName]], o=Example")
    other["dn.yaml"] = other["dn.yaml"].replace("Mobile Signing", "Mobile Encryption")
    files = without_default(add={**other, "encryption.yaml": ENCRYPTION})
    assert found(tmp_path, files, "MIM606") == [SIGNING_UNCOVERED]
