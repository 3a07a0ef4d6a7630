"""MIM3xx: credential profiles, certificate policies, card formats and badge layouts.

Each case breaks BASE as little as possible, asserts the rule's exact findings, and checks that
the fixed configuration draws none from that rule.
"""

from __future__ import annotations

import pytest

from tests.rules.base import changed, findings, problems

PROFILES = "profiles.yaml"
P = "profiles.yaml:{}: CredentialProfile/mobile-standard: {}"
POLICY = "  keyUsages: [digitalSignature]\n"
CONTAINER = "      container: System Store\n"
FORMAT = "  cardFormat: Mobile\n"


def policy(*lines: str) -> dict[str, tuple[str, str]]:
    """Extra fields on BASE's certificate policy mobile-signing."""
    return {"pki.yaml": (POLICY, POLICY + "".join(f"  {line}\n" for line in lines))}


def certificate(*lines: str) -> tuple[str, str]:
    """Extra fields on the profile's one certificate."""
    return CONTAINER, CONTAINER + "".join(f"      {line}\n" for line in lines)


SECOND_POLICY = """
    apiVersion: mim/v1
    kind: CertificatePolicy
    metadata:
      name: mobile-encryption
    spec:
      friendlyName: Mobile Encryption
      authority: issuing-ca
      keyUsages: [keyEncipherment]
      validityDays: {days}
    """
INTUNE = {"intune.yaml": """
    apiVersion: mim/v1
    kind: ExternalSystem
    metadata:
      name: Intune
    spec:
      listenerType: Intune
      tenantId: 4f1c1e9a-8d3b-4c4e-9a51-6f0c3c2b7d10
      clientId: 9b2d6c11-52a4-4f0e-8c0e-2f3a1d4b5c6e
      clientSecret: {env: INTUNE_CLIENT_SECRET}
    """}
DERIVED = "  mdmRestrictions:\n    status: MustBeRegistered\n    externalSystem: Intune\n"
MDM_PROFILE = FORMAT + "  certificates:\n    - policy: mobile-signing\n" + CONTAINER


def derived(profile_format: str = "Mobile", container: bool = True,
            named: bool = True) -> tuple[str, str]:
    """The profile made an Intune derived-credential profile; unless `named`, the product
    selects the only MDM system itself."""
    new = (f"  cardFormat: {profile_format}\n  certificates:\n    - policy: mobile-signing\n"
           + (CONTAINER if container else ""))
    return MDM_PROFILE, new + (DERIVED if named else DERIVED.split("    externalSystem")[0])


def card_format(name: str, description: str, container_id: str) -> dict[str, str]:
    return {"formats.yaml": f"""
        apiVersion: mim/v1
        kind: CardFormat
        metadata:
          name: {name}
        spec:
          description: {description}
          containers:
            - name: Signing
              id: {container_id}
        """}


def layout(front_image: str = "staff.png", orientation: str = "Portrait",
           text: str = "Horizontal", back: bool = False) -> dict[str, str]:
    text_fields = f"""
          textFields:
            - name: name
              source: "[[People.FullName]]"
              orientation: {text}"""
    documents = f"""
        apiVersion: mim/v1
        kind: CardLayout
        metadata:
          name: Staff Badge
        spec:
          frontImage: {front_image}
          orientation: {orientation}{text_fields}
        """
    if back:
        documents += """---
        apiVersion: mim/v1
        kind: CardLayout
        metadata:
          name: Staff Badge_back
        spec:
          frontImage: staff-back.png
        """
    return {"layouts.yaml": documents}


def with_layout(name: str) -> tuple[str, str]:
    return "    canUnlock: [Helpdesk]\n", f"    canUnlock: [Helpdesk]\n  cardLayouts: [{name}]\n"


L = "layouts.yaml:{}: CardLayout/Staff Badge: {}"
DERIVED_FINDINGS = [
    P.format("9:15", "spec.cardFormat: Intune derived credentials pass through the default key "
             "store before the MDM's app takes them over: set cardFormat to None"),
    P.format("12:18", "spec.certificates[0].container: Intune-managed apps keep certificates "
             "in their own key store, not in card format containers: remove container 'System "
             "Store'")]
F = "formats.yaml:{}: CardFormat/{}: {}"

CASES = [
    pytest.param(
        "MIM301", changed({PROFILES: ("  certificates:\n    - policy: mobile-signing\n"
                                      + CONTAINER, "")}),
        [P.format("6:3", "spec.certificates: this Identity Agent profile lists no certificates, "
                  "so there is nothing to put on a device and issuance fails: add the "
                  "certificate policies the device should receive")],
        changed({PROFILES: ("  cardEncoding: IdentityAgent\n  issuance:\n    notificationScheme: "
                            "Default\n  cardFormat: Mobile\n  certificates:\n    - policy: "
                            "mobile-signing\n" + CONTAINER,
                            "  cardEncoding: ContactChip\n  cardFormat: None\n")}),
        id="MIM301"),
    pytest.param(
        "MIM302", changed(policy("recoveryStorage: Hardware")),
        [P.format("11:15", "spec.certificates[0].policy: certificate policy 'mobile-signing' "
                  "has recoveryStorage Hardware, which mobile devices cannot use: set it to "
                  "Software on the policy, or pick a Software policy")],
        changed(policy("recoveryStorage: Software")), id="MIM302-recovery"),
    pytest.param(
        "MIM302", changed(policy("certificateStorage: Hardware", "recoveryStorage: Hardware")),
        [P.format("11:15", "spec.certificates[0].policy: certificate policy 'mobile-signing' "
                  "has certificateStorage and recoveryStorage Hardware, which mobile devices "
                  "cannot use: set it to Software on the policy, or pick a Software policy")],
        changed(policy("certificateStorage: Software", "recoveryStorage: Software")),
        id="MIM302-both"),
    pytest.param(
        "MIM303", changed(policy("keyAlgorithm: ECC", "keySize: 256")),
        [P.format("11:15", "spec.certificates[0].policy: certificate policy 'mobile-signing' "
                  "has keyAlgorithm ECC; ECC keys cannot be issued or recovered to mobile "
                  "devices: use an RSA policy")],
        changed(policy("keyAlgorithm: RSA", "keySize: 2048")), id="MIM303"),
    pytest.param(
        "MIM304", changed({PROFILES: (CONTAINER, "")}),
        [P.format("9:15", "spec.cardFormat: warning: card format Mobile is for the device's "
                  "system store, but no certificate names a container, so none reaches it: set "
                  "container: System Store on the certificates meant for it, or use card format "
                  "None")],
        changed({PROFILES: (MDM_PROFILE, MDM_PROFILE.replace("Mobile", "None")
                            .replace(CONTAINER, ""))}),
        id="MIM304"),
    pytest.param(
        "MIM306", changed({PROFILES: (CONTAINER, CONTAINER + "    - policy: mobile-encryption\n"
                                      + CONTAINER)},
                          add={"pki-more.yaml": SECOND_POLICY.replace("{days}", "730")}),
        [P.format("14:18", "spec.certificates[1].container: the System Store certificates "
                  "expire at different times (validityDays: mobile-signing 365, "
                  "mobile-encryption 730); iOS keeps them in one security profile and cannot "
                  "renew them: give their policies the same validityDays")],
        changed({PROFILES: (CONTAINER, CONTAINER + "    - policy: mobile-encryption\n"
                            + CONTAINER)},
                add={"pki-more.yaml": SECOND_POLICY.replace("{days}", "365")}),
        id="MIM306"),
    pytest.param(
        "MIM307", changed({PROFILES: derived()}, add=INTUNE),
        DERIVED_FINDINGS,
        changed({PROFILES: derived("None", container=False)}, add=INTUNE),
        id="MIM307"),
    pytest.param(
        "MIM307", changed({PROFILES: derived(named=False)}, add=INTUNE),
        DERIVED_FINDINGS,
        changed({PROFILES: derived("None", container=False, named=False)}, add=INTUNE),
        id="MIM307-sole-mdm"),
    pytest.param(
        "MIM309", changed({PROFILES: certificate("mode: HistoricOnly")}),
        [P.format("13:13", "spec.certificates[0].mode: mode HistoricOnly recovers keys to the "
                  "device, but certificate policy 'mobile-signing' does not archive them: set "
                  "archiveKeys: true on the policy, or deliver the certificate as IssueNew only")],
        changed({PROFILES: certificate("mode: HistoricOnly"), **policy("archiveKeys: true")}),
        id="MIM309-mode"),
    pytest.param(
        "MIM309", changed({PROFILES: certificate("archived: true")}),
        [P.format("13:17", "spec.certificates[0].archived: archived: true recovers keys to the "
                  "device, but certificate policy 'mobile-signing' does not archive them: set "
                  "archiveKeys: true on the policy, or deliver the certificate as IssueNew only")],
        changed({PROFILES: certificate("archived: true"), **policy("archiveKeys: true")}),
        id="MIM309-archived"),
    pytest.param(
        "MIM310", changed({PROFILES: derived("None", container=False),
                           **policy("automaticRenewal: true")}, add=INTUNE),
        [P.format("11:15", "spec.certificates[0].policy: warning: certificate policy "
                  "'mobile-signing' renews automatically; Intune derived credentials are "
                  "renewed by canceling and issuing again: use a policy without "
                  "automaticRenewal")],
        changed({PROFILES: derived("None", container=False),
                 **policy("automaticRenewal: false")}, add=INTUNE),
        id="MIM310"),
    pytest.param(
        "MIM311", changed(add=card_format("Łódź Mobile", "Badges ✓", "ΣIG")),
        [F.format("4:9", "Łódź Mobile", "metadata.name: 'Ł' (U+0141), 'ź' (U+017A) cannot be "
                  "written in ANSI (cp1252), the encoding the card data model file must use: "
                  "replace them"),
         F.format("6:16", "Łódź Mobile", "spec.description: '✓' (U+2713) cannot be written in "
                  "ANSI (cp1252), the encoding the card data model file must use: replace it"),
         F.format("9:11", "Łódź Mobile", "spec.containers[0].id: 'Σ' (U+03A3) cannot be "
                  "written in ANSI (cp1252), the encoding the card data model file must use: "
                  "replace it")],
        changed(add=card_format("Café Mobile", "Badges für Zürich", "SIG")), id="MIM311"),
    pytest.param(
        "MIM312", changed(add=layout("img/staff.JPEG")),
        [L.format("6:15", "spec.frontImage: issuing a layout whose image ends in .jpeg fails "
                  "even though the image is a JPEG: rename the file to 'img/staff.jpg'")],
        changed(add=layout("img/staff.jpg")), id="MIM312"),
    pytest.param(
        "MIM313", changed(add=layout("staff.gif")),
        [L.format("6:15", "spec.frontImage: front image 'staff.gif' has extension '.gif'; "
                  "mobile badges take .png or .jpg files only: convert the image to PNG or JPEG "
                  "and name it accordingly")],
        changed(add=layout("staff.PNG")), id="MIM313"),
    pytest.param(
        "MIM313", changed(add=layout("img.v2/staff")),
        [L.format("6:15", "spec.frontImage: front image 'img.v2/staff' has no extension; "
                  "mobile badges take .png or .jpg files only: convert the image to PNG or JPEG "
                  "and name it accordingly")],
        changed(add=layout("img.v2/staff.png")), id="MIM313-none"),
    pytest.param(
        "MIM314", changed({PROFILES: with_layout("Staff Badge_back")}, add=layout(back=True)),
        [P.format("19:17", "spec.cardLayouts[0]: warning: 'Staff Badge_back' is the reverse "
                  "side of a layout, and reverse sides never reach mobile devices: select the "
                  "front layout 'Staff Badge' instead, or remove it")],
        changed({PROFILES: with_layout("Staff Badge")}, add=layout(back=True)), id="MIM314"),
    pytest.param(
        "MIM315", changed({PROFILES: with_layout("Staff Badge")},
                          add=layout(orientation="Landscape", text="Vertical")),
        [L.format("7:16", "spec.orientation: warning: devices show badges in portrait only, "
                  "scaled to the screen width, and Identity Agent profile 'mobile-standard' "
                  "sends this one to devices: make a Portrait layout for mobile IDs"),
         L.format("11:20", "spec.textFields[0].orientation: warning: devices show horizontal "
                  "text only, and Identity Agent profile 'mobile-standard' sends this layout to "
                  "devices: make the text Horizontal")],
        changed({PROFILES: with_layout("Staff Badge")}, add=layout()), id="MIM315"),
]


def found(root, files, rule_id) -> list[str]:
    """The rule's findings with file names relative to the repository."""
    return [text.removeprefix(f"{root}/") for text in findings(root, files, rule_id)]


@pytest.mark.parametrize(("rule_id", "broken", "expected", "fixed"), CASES)
def test_rule_finds_the_mistake_and_not_its_fix(tmp_path, rule_id, broken, expected,
                                                 fixed) -> None:
    assert found(tmp_path / "broken", broken, rule_id) == expected
    assert found(tmp_path / "fixed", fixed, rule_id) == []


def test_unknown_documents_are_left_to_the_reference_check(tmp_path) -> None:
    files = changed({PROFILES: (MDM_PROFILE, MDM_PROFILE.replace("mobile-signing", "nope")
                                + "  cardLayouts: [Gone_back]\n" + DERIVED)})
    codes = [p.code for p in problems(tmp_path, files) if p.code.startswith(("MIM3", "ref"))]
    assert codes == ["reference"] * 3  # the policy, the layout and the external system
