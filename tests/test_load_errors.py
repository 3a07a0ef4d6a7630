"""Bad input for the loader and the cross-document checks: every problem at its exact place.

Each test writes a small, clean base repository (`BASE`) plus one file holding the mistake, and
compares whole `file:line:col: kind/name: field.path: message` lines. Paths are shown relative
to the working directory, which is the temporary folder, so files read as `specs/...`. The rule
catalogue is left out here (`rules=False`): tests/rules/ covers it, from a complete base.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from reconciler.load import MAX_FILE_BYTES, load
from reconciler.validate import validate

BASE = {
    "base.yaml": """
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: Holder
        spec:
          workflows: [Collect My Updates, Issue Device]
        ---
        apiVersion: mim/v1
        kind: CertificateAuthority
        metadata:
          name: issuing-ca
        spec:
          subject: CN=Test CA
        ---
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: signing
        spec:
          friendlyName: Signing
          authority: issuing-ca
        ---
        apiVersion: mim/v1
        kind: CredentialProfile
        metadata:
          name: standard
        spec:
          cardFormat: Mobile
          certificates:
            - policy: signing
              container: System Store
          roles:
            canReceive: [Holder]
            canCollect: [Holder]
        ---
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: alice
        spec:
          fullName: Alice Example
          roles: [Holder]
        """,
}
BASE_NAMES = {"Holder", "issuing-ca", "signing", "standard", "alice"}
BAD = "specs/broken.yaml"  # sorts after base.yaml, so "first at" always points into the base


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def problems(write_tree):
    """Validate BASE plus broken.yaml (and other files); return the problems as text lines."""

    def run(text: str | None = None, files: dict[str, str] | None = None) -> list[str]:
        tree = {**BASE, **(files or {})}
        if text is not None:
            tree["broken.yaml"] = text
        return [str(problem) for problem in validate(write_tree(tree), rules=False).problems]

    return run


def dn_policy(name: str, *lines: str) -> str:
    """A DnPolicy document; `lines` go into its spec before the dn template (line 5 on)."""
    body = "".join(f"  {line}\n" for line in lines)
    return (f"apiVersion: mim/v1\nkind: DnPolicy\nmetadata: {{name: {name}}}\nspec:\n{body}"
            "  dn: cn=[[People.FullName]]\n")


def names(root: Path) -> set[str]:
    return {document.name for document in load(root).documents}


def test_base_is_clean(write_tree) -> None:
    report = validate(write_tree(BASE), rules=False)
    assert report.problems == []
    assert {d.name for d in report.catalog.documents} == BASE_NAMES


# --- YAML syntax -----------------------------------------------------------------------------


def test_unclosed_bracket_keeps_the_documents_before_it(write_tree) -> None:
    root = write_tree({**BASE, "broken.yaml": """
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: Early
        ---
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: [Late
        """})
    result = load(root)
    assert [str(p) for p in result.problems] == [
        f"{BAD}:10:1: YAML syntax error: did not find expected ',' or ']' "
        "(while parsing a flow sequence)"]
    assert {d.name for d in result.documents} == BASE_NAMES | {"Early"}


def test_bad_indentation(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: X
         spec: {}
        """) == [f"{BAD}:5:2: YAML syntax error: did not find expected key "
                 "(while parsing a block mapping)"]


def test_mistake_before_a_syntax_error_is_still_located(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          email: bob@example.com
        ---
        foo: [
        """) == [
        f"{BAD}:6:3: Person/bob: spec.fullName: required key 'fullName' is missing",
        f"{BAD}:9:1: YAML syntax error: did not find expected node content "
        "(while parsing a flow node)",
    ]


# --- one document against its kind ------------------------------------------------------------


def test_wrong_type(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: other
        spec:
          friendlyName: Other
          authority: issuing-ca
          validityDays: soon
        """) == [f"{BAD}:8:17: CertificatePolicy/other: spec.validityDays: input should be a "
                 "valid integer, unable to parse string as an integer"]


def test_missing_required_field_points_at_the_spec_mapping(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          email: bob@example.com
        """) == [f"{BAD}:6:3: Person/bob: spec.fullName: required key 'fullName' is missing"]


def test_unknown_key_with_suggestion_points_at_the_key(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          fullName: Bob
          fulName: Bob
        """) == [f"{BAD}:7:3: Person/bob: spec.fulName: unknown key 'fulName'; "
                 "did you mean 'fullName'?"]


def test_unknown_key_without_suggestion(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          fullName: Bob
          shoeSize: 44
        """) == [f"{BAD}:7:3: Person/bob: spec.shoeSize: unknown key 'shoeSize'"]


def test_unknown_key_in_a_discriminated_union_suggests_from_that_member(problems) -> None:
    assert f"{BAD}:7:3: ExternalSystem/Intune: spec.tenantID: unknown key 'tenantID'; " \
        "did you mean 'tenantId'?" in problems("""
        apiVersion: mim/v1
        kind: ExternalSystem
        metadata:
          name: Intune
        spec:
          listenerType: Intune
          tenantID: t
          clientId: c
          clientSecret: {env: INTUNE_SECRET}
        """)


def test_unknown_kind_with_suggestion(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Persn
        metadata:
          name: bob
        """) == [f"{BAD}:2:7: Persn/bob: kind: unknown kind 'Persn'; did you mean 'Person'?"]


def test_unknown_kind_lists_the_known_kinds(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Widget
        metadata:
          name: bob
        """) == [f"{BAD}:2:7: Widget/bob: kind: unknown kind 'Widget'; known kinds: Settings, "
                 "Role, Person, CertificateAuthority, CertificatePolicy, CardFormat, CardLayout, "
                 "DnPolicy, ExternalSystem, CredentialProfile, Device, MobileRequest"]


def test_missing_kind(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        metadata:
          name: bob
        """) == [f"{BAD}:1:1: kind: required key 'kind' is missing (one of Settings, Role, "
                 "Person, CertificateAuthority, CertificatePolicy, CardFormat, CardLayout, "
                 "DnPolicy, ExternalSystem, CredentialProfile, Device, MobileRequest)"]


def test_wrong_api_version(problems) -> None:
    assert problems("""
        apiVersion: mim/v2
        kind: Person
        metadata:
          name: bob
        """) == [f"{BAD}:1:13: Person/bob: apiVersion: apiVersion 'mim/v2' is not supported; "
                 "this mimctl reads mim/v1"]


def test_missing_api_version(problems) -> None:
    assert problems("""
        kind: Person
        metadata:
          name: bob
        spec:
          fullName: Bob
        """) == [f"{BAD}:1:1: Person/bob: apiVersion: required key 'apiVersion' is missing "
                 "(apiVersion: mim/v1)"]


@pytest.mark.parametrize("text", ["- apiVersion: mim/v1\n  kind: Person\n", "just text\n"],
                         ids=["sequence", "scalar"])
def test_document_that_is_not_a_mapping(problems, text: str) -> None:
    assert problems(text) == [
        f"{BAD}:1:1: a document must be a mapping with apiVersion, kind, metadata and spec"]


# --- duplicates and the Settings singleton ----------------------------------------------------


def test_duplicate_kind_and_name_across_files_names_the_first(problems) -> None:
    assert problems(files={"more/roles.yaml": """
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: Holder
        """}) == ["specs/more/roles.yaml:4:9: Role/Holder: metadata.name: Role 'Holder' is "
                 "defined twice (first at specs/base.yaml:1:1)"]


def test_duplicate_key_names_both_lines(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          fullName: Bob
          fullName: Robert
        """) == [f"{BAD}:7:3: Person/bob: duplicate key 'fullName' (first at line 6); YAML "
                 "keeps only one, remove the other"]


def test_second_settings_document(problems) -> None:
    settings = """
        apiVersion: mim/v1
        kind: Settings
        metadata:
          name: system
        """
    assert problems(files={"settings.yaml": settings, "zz.yaml": settings}) == [
        "specs/zz.yaml:4:9: Settings/system: metadata.name: a second Settings document; there "
        "is only one (first at specs/settings.yaml:1:1)"]


def test_settings_must_be_named_system(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Settings
        metadata:
          name: main
        """) == [f"{BAD}:4:9: Settings/main: metadata.name: must be one of 'system'"]


# --- secrets ----------------------------------------------------------------------------------

INTUNE = textwrap.dedent("""
    apiVersion: mim/v1
    kind: ExternalSystem
    metadata:
      name: Intune
    spec:
      listenerType: Intune
      tenantId: t
      clientId: c
    """)


def test_plaintext_secret_says_how_to_seal(problems) -> None:
    assert problems(INTUNE + "  clientSecret: hunter2\n") == [
        f"{BAD}:9:17: ExternalSystem/Intune: spec.clientSecret: a secret must not be written in "
        "plain text: use {env: NAME} or {file: PATH}, or seal it with `mimctl secret seal` and "
        "paste the enc:v1:... value"]


def test_damaged_sealed_secret(problems) -> None:
    assert problems(INTUNE + '  clientSecret: "enc:v1:"\n') == [
        f"{BAD}:9:17: ExternalSystem/Intune: spec.clientSecret: sealed value is damaged: "
        "re-run `mimctl secret seal`"]


# --- hostile files ----------------------------------------------------------------------------


def test_python_tag_is_refused(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          fullName: !!python/object:os.system echo hi
        """) == [f"{BAD}:6:13: tag tag:yaml.org,2002:python/object:os.system is not allowed; "
                 "only YAML's core tags are (str, int, float, bool, null, map, seq)"]


def test_custom_tag_on_a_mapping_is_refused(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec: !custom
          fullName: Bob
        """) == [f"{BAD}:5:7: tag !custom is not allowed; only YAML's core tags are "
            "(str, int, float, bool, null, map, seq)"]


def test_billion_laughs_is_refused_quickly(problems) -> None:
    bomb = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
    started = time.perf_counter()
    found = problems(bomb)
    assert time.perf_counter() - started < 5
    assert found == [f"{BAD}:1:5: aliases expand to more than 100000 nodes; refusing a "
                     "possible 'billion laughs' file"]


def test_nesting_deeper_than_the_bound(problems) -> None:
    text = ("apiVersion: mim/v1\nkind: Person\nmetadata:\n  name: bob\nspec:\n"
            f"  fullName: {'[' * 70}{']' * 70}\n")
    assert problems(text) == [f"{BAD}:6:76: nesting deeper than 64 levels"]


def test_file_over_the_size_limit(write_tree) -> None:
    root = write_tree(BASE)
    (root / "huge.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    report = validate(root, rules=False)
    assert [str(p) for p in report.problems] == [
        "specs/huge.yaml:1:1: file is 16,777,217 bytes, over the limit of 16,777,216; "
        "split it into several files"]
    assert {d.name for d in report.catalog.documents} == BASE_NAMES


def test_non_utf8_file_names_the_bad_byte(write_tree) -> None:
    root = write_tree(BASE)
    (root / "latin.yaml").write_bytes(
        "apiVersion: mim/v1\nkind: Person\nmetadata:\n  name: jose\nspec:\n  fullName: Jos\xe9\n"
        .encode("latin-1"))
    assert [str(p) for p in validate(root, rules=False).problems] == [
        "specs/latin.yaml:6:16: file is not UTF-8 (byte 0xe9); save it as UTF-8"]


def test_utf8_bom_file_loads(write_tree) -> None:
    root = write_tree(BASE)
    (root / "bom.yaml").write_bytes(
        "\ufeffapiVersion: mim/v1\nkind: Person\nmetadata:\n  name: jose\nspec:\n"
        "  fullName: José\n".encode())
    result = load(root)
    assert result.problems == []
    (jose,) = [d for d in result.documents if d.name == "jose"]
    assert jose.model.spec.full_name == "José"
    assert str(jose.source) == "specs/bom.yaml:1:1"


# --- YAML 1.2 core schema ---------------------------------------------------------------------


def test_norway_yes_off_and_dates_stay_strings(write_tree) -> None:
    root = write_tree({**BASE, "people.yaml": """
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: ola
        spec:
          fullName: Ola Nordmann
          group: NO
          attributes: {Hired: 2024-01-31, Flag: yes, Shift: off}
        """})
    result = load(root)
    assert result.problems == []
    (ola,) = [d for d in result.documents if d.name == "ola"]
    assert ola.model.spec.group == "NO"
    assert ola.model.spec.attributes == {"Hired": "2024-01-31", "Flag": "yes", "Shift": "off"}


def test_merge_keys_with_own_keys_taking_precedence(write_tree) -> None:
    root = write_tree({**BASE, "people.yaml": """
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
          labels: &defaults {team: pki, site: london}
          annotations:
            site: paris
            <<: *defaults
        spec:
          fullName: Bob
        """})
    result = load(root)
    assert result.problems == []
    (bob,) = [d for d in result.documents if d.name == "bob"]
    assert bob.model.metadata.labels == {"team": "pki", "site": "london"}
    assert bob.model.metadata.annotations == {"team": "pki", "site": "paris"}


# --- which files are read ---------------------------------------------------------------------


def test_hidden_files_and_folders_are_skipped_and_yml_is_read(write_tree) -> None:
    root = write_tree({
        **BASE,
        ".git/x.yaml": "apiVersion: mim/v1\nkind: Role\nmetadata: {name: FromGit}\n",
        ".hidden.yaml": "kind: [\n",
        "sub/.cache/y.yaml": "kind: [\n",
        "notes.txt": "kind: [\n",
        "roles.yml": "apiVersion: mim/v1\nkind: Role\nmetadata: {name: FromYml}\n",
    })
    result = load(root)
    assert result.problems == []
    assert result.files == ["specs/base.yaml", "specs/roles.yml"]
    assert names(root) == BASE_NAMES | {"FromYml"}


def test_empty_documents_and_comment_only_files_are_skipped(write_tree) -> None:
    root = write_tree({
        **BASE,
        "empty.yaml": "",
        "comments.yaml": "# nothing here yet\n# still nothing\n",
        "multi.yaml": "---\n---\n# a comment\n---\n"
                      "apiVersion: mim/v1\nkind: Role\nmetadata: {name: Third}\n---\n",
    })
    result = load(root)
    assert result.problems == []
    assert len(result.files) == 4
    assert names(root) == BASE_NAMES | {"Third"}


def test_problem_in_a_document_after_empty_ones_is_located(problems) -> None:
    assert problems("---\n---\napiVersion: mim/v1\nkind: Person\nmetadata: {name: bob}\n"
                    "spec:\n  fullName: Bob\n  shoeSize: 44\n") == [
        f"{BAD}:8:3: Person/bob: spec.shoeSize: unknown key 'shoeSize'"]


# --- dangling references ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["canReceive", "canRequest", "canValidate", "canCollect",
                                   "canUnlock"])
def test_dangling_profile_role(problems, field: str) -> None:
    assert problems(f"""
        apiVersion: mim/v1
        kind: CredentialProfile
        metadata:
          name: broken
        spec:
          roles:
            {field}:
              - Holder
              - Holdr
        """) == [f"{BAD}:9:9: CredentialProfile/broken: spec.roles.{field}[1]: unknown Role "
                 "'Holdr'; did you mean 'Holder'?"]


PROFILE = textwrap.dedent("""
    apiVersion: mim/v1
    kind: CredentialProfile
    metadata:
      name: broken
    spec:
    """)


@pytest.mark.parametrize(("spec", "expected"), [
    ("  certificates:\n    - policy: signin\n",
     "7:15: CredentialProfile/broken: spec.certificates[0].policy: unknown CertificatePolicy "
     "'signin'; did you mean 'signing'?"),
    ("  cardFormat: Mobil\n",
     "6:15: CredentialProfile/broken: spec.cardFormat: unknown CardFormat 'Mobil'; "
     "did you mean 'Mobile'?"),
    ("  cardLayouts: [Badge]\n",
     "6:17: CredentialProfile/broken: spec.cardLayouts[0]: unknown CardLayout 'Badge'"),
    ("  mdmRestrictions:\n    status: MustBeRegistered\n    externalSystem: Intune\n",
     "8:21: CredentialProfile/broken: spec.mdmRestrictions.externalSystem: unknown "
     "ExternalSystem 'Intune'"),
], ids=["policy", "card-format", "card-layout", "mdm-system"])
def test_dangling_profile_reference(problems, spec: str, expected: str) -> None:
    assert problems(PROFILE + spec) == [f"{BAD}:{expected}"]


def test_dangling_request_references(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: MobileRequest
        metadata:
          name: req
        spec:
          person: alic
          credentialProfile: standrd
          requestedBy: carol
        """) == [
        f"{BAD}:6:11: MobileRequest/req: spec.person: unknown Person 'alic'; "
        "did you mean 'alice'?",
        f"{BAD}:7:22: MobileRequest/req: spec.credentialProfile: unknown CredentialProfile "
        "'standrd'; did you mean 'standard'?",
        f"{BAD}:8:16: MobileRequest/req: spec.requestedBy: unknown Person 'carol'",
    ]


def test_dn_policy_finds_certificate_policies_by_friendly_name(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: DnPolicy
        metadata:
          name: signing-dn
        spec:
          certificatePolicy: signing
          dn: cn=[[People.FullName]]
        """) == [f"{BAD}:6:22: DnPolicy/signing-dn: spec.certificatePolicy: no "
                 "CertificatePolicy has friendlyName 'signing'; did you mean 'Signing'?"]


def test_dn_policy_by_friendly_name_is_clean(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: DnPolicy
        metadata:
          name: signing-dn
        spec:
          certificatePolicy: Signing
          dn: cn=[[People.FullName]]
        """) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("kind: CertificatePolicy\nmetadata: {name: other}\nspec:\n  friendlyName: Other\n"
     "  authority: issuing\n",
     "6:14: CertificatePolicy/other: spec.authority: unknown CertificateAuthority 'issuing'; "
     "did you mean 'issuing-ca'?"),
    ("kind: Device\nmetadata: {name: phone}\nspec:\n  serialNumber: SN1\n  platform: ios\n"
     "  owner: alicia\n",
     "7:10: Device/phone: spec.owner: unknown Person 'alicia'; did you mean 'alice'?"),
    ("kind: Person\nmetadata: {name: bob}\nspec:\n  fullName: Bob\n  roles: [Holder, Admin]\n",
     "6:19: Person/bob: spec.roles[1]: unknown Role 'Admin'"),
    ("kind: Settings\nmetadata: {name: system}\nspec:\n  certificates:\n    iosOta:\n"
     "      credentialProfile: standard-ios\n",
     "7:26: Settings/system: spec.certificates.iosOta.credentialProfile: unknown "
     "CredentialProfile 'standard-ios'; did you mean 'standard'?"),
], ids=["authority", "device-owner", "person-role", "settings-ios-ota"])
def test_dangling_reference(problems, text: str, expected: str) -> None:
    assert problems("apiVersion: mim/v1\n" + text) == [f"{BAD}:{expected}"]


# --- card formats -----------------------------------------------------------------------------


def test_certificate_container_missing_from_the_card_format(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: CardFormat
        metadata:
          name: Badge Card
        spec:
          containers:
            - {name: Signing, id: "01", certificate: true}
            - {name: Photo, id: "02"}
        ---
        apiVersion: mim/v1
        kind: CredentialProfile
        metadata:
          name: badge
        spec:
          cardFormat: Badge Card
          certificates:
            - policy: signing
              container: Encryption
        """) == [f"{BAD}:18:18: CredentialProfile/badge: spec.certificates[0].container: card "
                 "format 'Badge Card' has no container 'Encryption' (its containers: Photo, "
                 "Signing)"]


def test_builtin_none_format_has_no_containers(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: CredentialProfile
        metadata:
          name: mdm
        spec:
          cardFormat: None
          certificates:
            - policy: signing
              container: System Store
        """) == [f"{BAD}:9:18: CredentialProfile/mdm: spec.certificates[0].container: card "
                 "format 'None' has no container 'System Store' (its containers: none)"]


def test_builtin_formats_need_no_declaration(problems) -> None:
    # The base profile uses Mobile / System Store; this one uses None without a container.
    assert problems("""
        apiVersion: mim/v1
        kind: CredentialProfile
        metadata:
          name: mdm
        spec:
          cardFormat: None
          certificates:
            - policy: signing
        """) == []


@pytest.mark.parametrize("name", ["Mobile", "None"])
def test_builtin_formats_cannot_be_redefined(problems, name: str) -> None:
    assert problems(f"""
        apiVersion: mim/v1
        kind: CardFormat
        metadata:
          name: {name}
        spec:
          containers:
            - {{name: System Store, id: "01"}}
        """) == [f"{BAD}:4:9: CardFormat/{name}: metadata.name: card format '{name}' is built "
                 "in and cannot be redefined; give yours another name"]


# --- uniqueness -------------------------------------------------------------------------------


def test_duplicate_friendly_name(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: signing-copy
        spec:
          friendlyName: Signing
          authority: issuing-ca
        """) == [f"{BAD}:6:17: CertificatePolicy/signing-copy: spec.friendlyName: friendlyName "
                 "'Signing' is already used by CertificatePolicy/signing (specs/base.yaml:15:1); "
                 "DN policies find certificate policies by it"]


def test_duplicate_device_serial_number(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Device
        metadata: {name: phone-1}
        spec: {serialNumber: SN1, platform: ios}
        ---
        apiVersion: mim/v1
        kind: Device
        metadata: {name: phone-2}
        spec:
          serialNumber: SN1
          platform: android
        """) == [f"{BAD}:10:17: Device/phone-2: spec.serialNumber: serial number 'SN1' is "
                 f"already registered as Device/phone-1 ({BAD}:1:1)"]


def test_two_dn_policies_for_one_certificate_policy(problems) -> None:
    text = (dn_policy("dn-1", "certificatePolicy: Signing") + "---\n"
            + dn_policy("dn-2", "certificatePolicy: Signing"))
    assert problems(text) == [f"{BAD}:12:22: DnPolicy/dn-2: spec.certificatePolicy: certificate "
                              f"policy 'Signing' already has a DN policy: DnPolicy/dn-1 "
                              f"({BAD}:1:1)"]


def test_two_default_dn_policies(problems) -> None:
    text = dn_policy("dn-1", "default: true") + "---\n" + dn_policy("dn-2", "default: true")
    assert problems(text) == [f"{BAD}:12:12: DnPolicy/dn-2: spec.default: a default DN policy "
                              f"already exists: DnPolicy/dn-1 ({BAD}:1:1)"]


def test_settings_default_dn_and_a_default_dn_policy(problems) -> None:
    assert problems(dn_policy("dn-1", "default: true"), files={"settings.yaml": """
        apiVersion: mim/v1
        kind: Settings
        metadata:
          name: system
        spec:
          dnProcessor:
            default: cn=[[People.FullName]]
        """}) == [f"{BAD}:5:12: DnPolicy/dn-1: spec.default: Settings already sets "
                 "dnProcessor.default; keep one default DN"]


# --- rules across fields of one document ------------------------------------------------------


@pytest.mark.parametrize("credentials", [
    "  clientSecret: {env: INTUNE_SECRET}\n"
    "  clientCertificate:\n    certificate: {file: intune.pem}\n    key: {file: intune.key}\n",
    "",
], ids=["both", "neither"])
def test_intune_needs_exactly_one_credential(problems, credentials: str) -> None:
    assert problems(INTUNE + credentials) == [
        f"{BAD}:6:3: ExternalSystem/Intune: spec: give exactly one of clientSecret and "
        "clientCertificate"]


WORKSPACE_ONE = textwrap.dedent("""
    apiVersion: mim/v1
    kind: ExternalSystem
    metadata:
      name: WS1
    spec:
      listenerType: WorkspaceOne
      baseUrl: https://as1.awmdm.com
      keyValue: {env: WS1_KEY}
      authentication: Certificate
    """)


@pytest.mark.parametrize(("extra", "message"), [
    ("", "authentication Certificate needs clientCertificate"),
    ("  clientCertificate: {file: ws1.p12}\n  username: admin\n",
     "username does not apply to authentication Certificate; remove it"),
], ids=["no-certificate", "with-username"])
def test_workspace_one_certificate_authentication(problems, extra: str, message: str) -> None:
    assert problems(WORKSPACE_ONE + extra) == [f"{BAD}:6:3: ExternalSystem/WS1: spec: {message}"]


REQUEST = textwrap.dedent("""
    apiVersion: mim/v1
    kind: MobileRequest
    metadata:
      name: req
    spec:
      person: alice
      credentialProfile: standard
    """)


@pytest.mark.parametrize(("extra", "message"), [
    ("  kind: Issue\n  device: phone\n",
     "device applies to Replace, Update and Renew requests, not Issue"),
    ("  kind: Replace\n", "a Replace request needs the device it is for"),
], ids=["issue-with-device", "replace-without"])
def test_request_device_fits_its_kind(problems, extra: str, message: str) -> None:
    assert problems(REQUEST + extra) == [f"{BAD}:6:3: MobileRequest/req: spec: {message}"]


@pytest.mark.parametrize("lines", [("certificatePolicy: Signing", "default: true"), ()],
                         ids=["both", "neither"])
def test_dn_policy_target(problems, lines: tuple[str, ...]) -> None:
    assert problems(dn_policy("dn-1", *lines)) == [
        f"{BAD}:5:3: DnPolicy/dn-1: spec: give either certificatePolicy or default: true, "
        "not both or neither"]


def test_rsa_key_size_256(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: weak
        spec:
          friendlyName: Weak
          authority: issuing-ca
          keySize: 256
        """) == [f"{BAD}:6:3: CertificatePolicy/weak: spec: keySize 256 is not a RSA size "
                 "(one of 2048, 3072, 4096)"]


def test_authority_with_certificate_but_no_key(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: CertificateAuthority
        metadata:
          name: half-ca
        spec:
          certificate: {file: ca.pem}
        """) == [f"{BAD}:6:3: CertificateAuthority/half-ca: spec: certificate and key go "
                 "together: give both, or neither to have mimctl generate the CA on first apply"]


@pytest.mark.parametrize(("annotation", "message"), [
    ('mim/protected: "true"',
     "unknown mimctl annotation 'mim/protected'; known: mim/ignore-rules, mim/protect"),
    ('mim/protect: "yes"', "mim/protect must be \"true\" or \"false\", not 'yes'"),
], ids=["unknown", "bad-protect"])
def test_mim_annotations(problems, annotation: str, message: str) -> None:
    assert problems(f"""
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: Annotated
          annotations:
            {annotation}
        """) == [f"{BAD}:6:5: Role/Annotated: metadata.annotations: {message}"]


def test_other_annotations_are_free(problems) -> None:
    assert problems("""
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: Annotated
          annotations:
            mim/protect: "true"
            example.com/owner: pki-team
        """) == []
