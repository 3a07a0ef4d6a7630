"""`mimctl validate` through the real CLI: every problem in one run, summaries, JSON, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
        kind: DnPolicy
        metadata:
          name: default
        spec:
          default: true
          dn: cn=[[People.FullName]], o=Example
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
          issuance: {notificationScheme: None}
        ---
        apiVersion: mim/v1
        kind: Settings
        metadata:
          name: system
        spec:
          certificates:
            mobileCertificateRecoveryServiceUrl: https://mim.example.com
          issuanceProcesses:
            appDownloadUrlAndroid: https://play.example.com/agent
            appDownloadUrlIos: https://apps.example.com/agent
          contentSigning:
            authority: issuing-ca
        """,
    "people.yaml": """
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: alice
        spec:
          fullName: Alice Example
          roles: [Holder]
        """,
}

# Five different mistakes, written so that the order in which they are found (schema while
# loading, then duplicates, then references) is not the order of their lines.
FIVE_MISTAKES = """
    apiVersion: mim/v1
    kind: Device
    metadata:
      name: phone
    spec:
      serialNumber: SN1
      platform: ios
      owner: dave
    ---
    apiVersion: mim/v1
    kind: Device
    metadata:
      name: phone
    spec:
      serialNumber: SN2
      platform: android
    ---
    apiVersion: mim/v1
    kind: Person
    metadata:
      name: bob
    spec:
      fullName: Bob
      shoeSize: 44
    ---
    apiVersion: mim/v1
    kind: CertificatePolicy
    metadata:
      name: other
    spec:
      friendlyName: Other
      authority: issuing-ca
      validityDays: soon
    ---
    apiVersion: mim/v1
    kind: Person
    metadata:
      name: carol
    spec:
      email: carol@example.com
    """
FIVE_PROBLEMS = [
    "specs/mistakes.yaml:8:10: Device/phone: spec.owner: unknown Person 'dave'",
    "specs/mistakes.yaml:13:9: Device/phone: metadata.name: Device 'phone' is defined twice "
    "(first at specs/mistakes.yaml:1:1)",
    "specs/mistakes.yaml:24:3: Person/bob: spec.shoeSize: unknown key 'shoeSize'",
    "specs/mistakes.yaml:33:17: CertificatePolicy/other: spec.validityDays: input should be a "
    "valid integer, unable to parse string as an integer",
    "specs/mistakes.yaml:40:3: Person/carol: spec.fullName: required key 'fullName' is missing",
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_five_mistakes_in_one_file_are_all_reported_sorted_by_line(write_tree, mimctl) -> None:
    root = write_tree({**BASE, "mistakes.yaml": FIVE_MISTAKES})
    result = mimctl("validate", root)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        *FIVE_PROBLEMS,
        "5 errors in 1 file (9 valid documents in 3 files)",
    ]


def test_clean_tree(write_tree, mimctl) -> None:
    result = mimctl("validate", write_tree(BASE))
    assert result.exit_code == 0
    assert result.output == "ok: 7 valid documents in 2 files\n"


def test_clean_single_file(write_tree, mimctl) -> None:
    root = write_tree(BASE)
    result = mimctl("validate", root / "base.yaml")
    assert result.exit_code == 0
    assert result.output == "ok: 6 valid documents in 1 file\n"


def test_one_error_is_singular(write_tree, mimctl) -> None:
    root = write_tree({**BASE, "bob.yaml": """
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          fullName: Bob
          roles: [Admin]
        """})
    result = mimctl("validate", root)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "specs/bob.yaml:7:11: Person/bob: spec.roles[0]: unknown Role 'Admin'",
        "1 error in 1 file (8 valid documents in 3 files)",
    ]


def test_json_with_problems(write_tree, mimctl) -> None:
    root = write_tree({**BASE, "mistakes.yaml": FIVE_MISTAKES})
    result = mimctl("validate", "--format", "json", root)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["format_version"] == 1
    assert report["valid"] is False
    assert (report["files"], report["documents"]) == (3, 9)
    assert len(report["problems"]) == 5
    assert report["problems"][0] == {
        "file": "specs/mistakes.yaml", "line": 8, "column": 10, "kind": "Device",
        "name": "phone", "path": "spec.owner", "severity": "error", "code": "reference",
        "message": "unknown Person 'dave'",
    }
    assert [p["code"] for p in report["problems"]] == [
        "reference", "duplicate", "schema", "schema", "schema"]
    assert [p["line"] for p in report["problems"]] == [8, 13, 24, 33, 40]


def test_json_of_a_yaml_error_has_no_kind(write_tree, mimctl) -> None:
    root = write_tree({**BASE, "broken.yaml": "kind: [\n"})
    report = json.loads(mimctl("validate", "--format=json", root).output)
    assert report["problems"] == [{
        "file": "specs/broken.yaml", "line": 2, "column": 1, "kind": None, "name": None,
        "path": "", "severity": "error", "code": "yaml",
        "message": "YAML syntax error: did not find expected node content "
                   "(while parsing a flow node)",
    }]


def test_json_when_clean(write_tree, mimctl) -> None:
    result = mimctl("validate", "--format", "json", write_tree(BASE))
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "format_version": 1, "valid": True, "files": 2, "documents": 7, "problems": [],
    }


def test_nonexistent_path(tmp_path: Path, mimctl) -> None:
    missing = tmp_path / "nowhere"
    result = mimctl("validate", missing)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {missing}: no such file or directory\n"


def test_folder_without_yaml_files(write_tree, mimctl) -> None:
    root = write_tree({"README.md": "# nothing\n", ".hidden.yaml": "kind: Role\n"})
    result = mimctl("validate", root)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: no *.yaml or *.yml files under {root}\n"


def test_unknown_format_is_a_usage_error(write_tree, mimctl) -> None:
    result = mimctl("validate", "--format", "xml", write_tree(BASE))
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json'" in result.stderr


def test_main_help(mimctl) -> None:
    result = mimctl("--help")
    assert result.exit_code == 0
    assert "--db URL" in result.output
    assert "MIM_DATABASE_URL" in result.output
    assert "--version" in result.output
    assert "validate" in result.output and "schema" in result.output


def test_validate_help(mimctl) -> None:
    result = mimctl("validate", "-h")
    assert result.exit_code == 0
    assert "validate [OPTIONS] [PATH]" in result.output
    assert "--format [text|json|markdown]" in result.output
    assert "[default: text]" in result.output
    assert "file:line:column" in result.output
