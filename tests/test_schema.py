"""JSON Schemas of the spec documents: written by `mimctl schema`, valid, strict as the models."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.yamlnodes import NodeConverter, compose_documents, is_empty
from specs import KINDS
from specs.schema import DIALECT, all_kinds_schema, kind_schema
from tests.conftest import EXAMPLES, SPEC_EXAMPLES

Validator = jsonschema.Draft202012Validator
ALL_KINDS_FILE = "mimctl.schema.json"


@pytest.fixture(scope="module")
def schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder `mimctl schema --out` wrote, once for the module."""
    from cli import main

    out = tmp_path_factory.mktemp("schemas") / "out"
    result = CliRunner().invoke(main, ["schema", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def validators(schema_dir: Path) -> dict[str, Validator]:
    """A validator per kind, and one for the all-kinds schema under ALL_KINDS_FILE."""
    found = {kind: Validator(json.loads((schema_dir / f"{kind}.schema.json").read_text("utf-8")))
             for kind in KINDS}
    found[ALL_KINDS_FILE] = Validator(json.loads((schema_dir / ALL_KINDS_FILE).read_text("utf-8")))
    return found


# --- mimctl schema ---


def test_schema_out_writes_one_valid_schema_per_kind(mimctl, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "schemas"
    result = mimctl("schema", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {len(KINDS) + 1} schemas to {out}"

    expected = {f"{kind}.schema.json" for kind in KINDS} | {ALL_KINDS_FILE}
    assert {path.name for path in out.iterdir()} == expected
    for name in sorted(expected):
        schema = json.loads((out / name).read_text(encoding="utf-8"))
        Validator.check_schema(schema)
        assert schema["$schema"] == DIALECT, name
    for kind in KINDS:
        schema = json.loads((out / f"{kind}.schema.json").read_text(encoding="utf-8"))
        assert schema == kind_schema(kind)
        assert schema["properties"]["kind"]["const"] == kind
        assert schema["properties"]["apiVersion"]["const"] == "mim/v1"
        assert set(schema["required"]) >= {"apiVersion", "kind", "metadata"}
        assert schema["additionalProperties"] is False
    assert json.loads((out / ALL_KINDS_FILE).read_text(encoding="utf-8")) == all_kinds_schema()


def test_schema_without_out_prints_the_all_kinds_schema(mimctl) -> None:
    result = mimctl("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    assert len(schema["oneOf"]) == len(KINDS)
    kinds = []
    for entry in schema["oneOf"]:
        prefix = "#/$defs/"
        assert entry["$ref"].startswith(prefix)
        definition = schema["$defs"][entry["$ref"].removeprefix(prefix)]
        kinds.append(definition["properties"]["kind"]["const"])
    assert kinds == list(KINDS)


def test_schema_out_can_be_rerun_into_the_same_folder(mimctl, tmp_path: Path) -> None:
    assert mimctl("schema", "--out", tmp_path).exit_code == 0
    (tmp_path / "Role.schema.json").write_text("{}", encoding="utf-8")
    assert mimctl("schema", "--out", tmp_path).exit_code == 0
    assert json.loads((tmp_path / "Role.schema.json").read_text("utf-8")) == kind_schema("Role")


# --- the examples are valid ---


def _example_documents() -> Iterator[tuple[str, Any]]:
    for path in sorted(p for example in SPEC_EXAMPLES for p in example.rglob("*")):
        if path.suffix not in (".yaml", ".yml"):
            continue
        converter = NodeConverter()
        for index, node in enumerate(compose_documents(path.read_text(encoding="utf-8"))):
            if is_empty(node):
                continue
            data = converter.convert(node)
            assert converter.problems == [], path
            yield f"{path.relative_to(EXAMPLES)}#{index}", data


EXAMPLE_DOCUMENTS = list(_example_documents())


def test_examples_cover_every_kind() -> None:
    assert len(EXAMPLE_DOCUMENTS) >= len(KINDS)
    assert {data["kind"] for _, data in EXAMPLE_DOCUMENTS} == set(KINDS)


@pytest.mark.parametrize(("where", "document"), EXAMPLE_DOCUMENTS,
                         ids=[where for where, _ in EXAMPLE_DOCUMENTS])
def test_example_document_matches_the_schemas(where: str, document: Any,
                                              validators: dict[str, Validator]) -> None:
    for name in (document["kind"], ALL_KINDS_FILE):
        errors = [f"{list(error.absolute_path)}: {error.message}"
                  for error in validators[name].iter_errors(document)]
        assert errors == [], f"{where} against {name}"


# --- what the schemas reject ---


def _profile() -> dict[str, Any]:
    return {
        "apiVersion": "mim/v1",
        "kind": "CredentialProfile",
        "metadata": {"name": "mobile-standard", "labels": {"team": "pki"}},
        "spec": {
            "cardFormat": "Mobile",
            "issuance": {"notificationScheme": "None"},
            "certificates": [{"policy": "mobile-signing", "container": "System Store"}],
            "roles": {"canReceive": ["PasswordUser"]},
            "mdmRestrictions": {"status": "MustBeRegistered", "externalSystem": "Intune"},
        },
    }


_ENV_SECRET = {"env": "INTUNE_CLIENT_SECRET"}


def _intune(secret: Any = _ENV_SECRET) -> dict[str, Any]:
    return {
        "apiVersion": "mim/v1",
        "kind": "ExternalSystem",
        "metadata": {"name": "Intune Production"},
        "spec": {"listenerType": "Intune", "tenantId": "tenant", "clientId": "client",
                 "clientSecret": copy.deepcopy(secret)},
    }


def _settings() -> dict[str, Any]:
    return {
        "apiVersion": "mim/v1",
        "kind": "Settings",
        "metadata": {"name": "system"},
        "spec": {"certificates": {"iosOta": {"organization": "Example"}},
                 "contentSigning": {"certificate": {"file": "/etc/mim/signing.crt"},
                                    "key": {"env": "SIGNING_KEY"}}},
    }


def _with(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of `document` with `value` set at `path`."""
    changed = copy.deepcopy(document)
    target: Any = changed
    for element in path[:-1]:
        target = target[element]
    target[path[-1]] = value
    return changed


def _all_errors(errors: Any) -> Iterator[jsonschema.ValidationError]:
    for error in errors:
        yield error
        yield from _all_errors(error.context or ())


def _accepted(document: dict[str, Any], validators: dict[str, Validator]) -> bool:
    """Whether the kind's schema and the all-kinds schema accept it (they must agree)."""
    by_kind = validators[document["kind"]].is_valid(document)
    assert validators[ALL_KINDS_FILE].is_valid(document) == by_kind
    return by_kind


def _model_accepts(document: dict[str, Any]) -> bool:
    if document.get("kind") not in KINDS:
        return False
    try:
        KINDS[document["kind"]].model_validate(document)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("base", [_profile, _intune, _settings], ids=lambda f: f.__name__[1:])
def test_the_base_documents_are_valid(base, validators: dict[str, Validator]) -> None:
    assert _accepted(base(), validators)
    assert _model_accepts(base())


UNKNOWN_KEYS = [
    (_profile, ()),
    (_profile, ("metadata",)),
    (_profile, ("spec",)),
    (_profile, ("spec", "issuance")),
    (_profile, ("spec", "certificates", 0)),
    (_profile, ("spec", "roles")),
    (_profile, ("spec", "mdmRestrictions")),
    (_settings, ("spec", "certificates", "iosOta")),
    (_settings, ("spec", "contentSigning")),
    (_intune, ("spec",)),
]


@pytest.mark.parametrize(("base", "parent"), UNKNOWN_KEYS,
                         ids=[f"{b.__name__[1:]}:{'.'.join(map(str, p)) or 'top'}"
                              for b, p in UNKNOWN_KEYS])
def test_an_unknown_key_is_rejected(base, parent: tuple[str | int, ...],
                                    validators: dict[str, Validator]) -> None:
    document = _with(base(), (*parent, "bogus"), "x")
    assert not _accepted(document, validators)
    assert not _model_accepts(document)
    # The kind's schema says which key, and where.
    found = [error for error in _all_errors(validators[document["kind"]].iter_errors(document))
             if "'bogus'" in error.message]
    assert found, "no error names the unknown key"
    assert any(tuple(error.absolute_path) == parent for error in found)


@pytest.mark.parametrize("secret", [
    "hunter2",
    "enc:v1:",
    "enc:v2:QUJD",
    "",
    {},
    {"env": ""},
    {"env": "1STARTS_WITH_DIGIT"},
    {"env": "WITH-DASH"},
    {"file": ""},
    {"env": "A", "file": "/b"},
    {"value": "hunter2"},
    {"sealed": "enc:v1:QUJD"},
    ["hunter2"],
    42,
    True,
], ids=repr)
def test_a_plaintext_or_malformed_secret_is_rejected(secret: Any,
                                                     validators: dict[str, Validator]) -> None:
    document = _intune(secret)
    assert not _accepted(document, validators)
    assert not _model_accepts(document)


@pytest.mark.parametrize("secret", [
    {"env": "INTUNE_CLIENT_SECRET"},
    {"env": "_x1"},
    {"file": "/run/secrets/intune"},
    "enc:v1:QUJD:ZGVm=",
], ids=repr)
def test_secret_references_are_accepted(secret: Any, validators: dict[str, Validator]) -> None:
    document = _intune(secret)
    assert _accepted(document, validators)
    assert _model_accepts(document)


@pytest.mark.parametrize(("path", "value"), [
    (("spec", "contentSigning", "key"), "-----BEGIN PRIVATE KEY-----\nMIIE\n"),
    (("spec", "contentSigning", "key"), "plaintext"),
    (("spec", "contentSigning", "certificate"), "not a certificate"),
    (("spec", "contentSigning", "certificate"), {"env": "CERT"}),
], ids=["key-pem", "key-plain", "certificate-text", "certificate-env"])
def test_settings_secret_and_certificate_fields_are_checked(
        path: tuple[str, ...], value: Any, validators: dict[str, Validator]) -> None:
    document = _with(_settings(), path, value)
    assert not _accepted(document, validators)
    assert not _model_accepts(document)


def test_an_inline_pem_certificate_is_accepted(validators: dict[str, Validator]) -> None:
    document = _with(_settings(), ("spec", "contentSigning", "certificate"),
                     "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert _accepted(document, validators)
    assert _model_accepts(document)


@pytest.mark.parametrize("listener", ["Jamf", "intune", "", None, 1])
def test_an_unknown_listener_type_is_rejected(listener: Any,
                                              validators: dict[str, Validator]) -> None:
    document = _with(_intune(), ("spec", "listenerType"), listener)
    assert not _accepted(document, validators)
    assert not _model_accepts(document)


def test_a_missing_listener_type_is_rejected(validators: dict[str, Validator]) -> None:
    document = _intune()
    del document["spec"]["listenerType"]
    assert not _accepted(document, validators)
    assert not _model_accepts(document)


@pytest.mark.parametrize(("path", "value"), [
    (("apiVersion",), "mim/v2"),
    (("kind",), "Credentialprofile"),
    (("metadata", "name"), "Mobile Standard"),
    (("metadata", "name"), "-leading-dash"),
    (("metadata", "name"), "x" * 64),
    (("spec", "issuance", "notificationScheme"), "Sms"),
    (("spec", "certificates", 0, "mode"), "Reissue"),
    (("spec", "cardEncoding"), 7),
    (("spec", "roles", "canReceive"), "PasswordUser"),
], ids=lambda v: repr(v) if not isinstance(v, tuple) else ".".join(map(str, v)))
def test_wrong_values_are_rejected(path: tuple[str | int, ...], value: Any,
                                   validators: dict[str, Validator]) -> None:
    document = _with(_profile(), path, value)
    assert not validators[ALL_KINDS_FILE].is_valid(document)
    assert not validators["CredentialProfile"].is_valid(document)
    assert not _model_accepts(document)


def test_a_document_of_each_kind_matches_only_its_own_schema(
        validators: dict[str, Validator]) -> None:
    for _, document in EXAMPLE_DOCUMENTS:
        matching = {kind for kind in KINDS if validators[kind].is_valid(document)}
        assert matching == {document["kind"]}
