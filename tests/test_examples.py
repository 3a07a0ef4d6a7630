"""Every example repository validates cleanly through the real CLI."""

from __future__ import annotations

import pytest

from reconciler.validate import validate
from tests.conftest import EXAMPLES, SPEC_EXAMPLES

EXAMPLE_DIRS = SPEC_EXAMPLES


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLE_DIRS}
    assert {"quickstart", "intune-derived-credentials"} <= names


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_example_validates(example, mimctl) -> None:
    result = mimctl("validate", example)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_quickstart_holds_the_smallest_useful_configuration() -> None:
    report = validate(EXAMPLES / "quickstart")
    counts = {kind: len(docs) for kind, docs in report.catalog.by_kind.items()}
    assert counts["Settings"] == 1
    assert counts["Role"] == 2
    assert counts["CertificateAuthority"] == 1 and counts["CertificatePolicy"] == 1
    assert counts["CredentialProfile"] == 1 and counts["Person"] == 2
    assert counts["MobileRequest"] == 1
    (profile,) = report.catalog.of_kind("CredentialProfile")
    assert profile.model.spec.card_encoding == "IdentityAgent"


def test_intune_example_uses_secret_references_only() -> None:
    report = validate(EXAMPLES / "intune-derived-credentials")
    systems = {d.name: d.model.spec for d in report.catalog.of_kind("ExternalSystem")}
    assert systems["Intune Production"].client_secret.env == "INTUNE_CLIENT_SECRET"
    assert systems["Workspace ONE"].key_value.env == "WS1_API_KEY"
    assert {s.listener_type for s in systems.values()} >= {"Intune", "WorkspaceOne"}


def test_the_fast_yaml_composer_is_in_use() -> None:
    """Plans at scale depend on libyaml; a silent fall back to pure Python is 10x slower."""
    import yaml

    from reconciler import yamlnodes

    assert yamlnodes.LIBYAML == yaml.__with_libyaml__
    assert yamlnodes._Composer.__mro__[1].__module__ == "yaml._yaml"
