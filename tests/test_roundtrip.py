"""Round trips: spec models through files and the loader, tricky scalars through the dumper.

Whatever `dump_models` / `dump_documents` writes must read back as the same data: that is what
`mimctl` relies on whenever it writes specs for a user to keep.
"""

from __future__ import annotations

import copy
import functools
import math
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from pydantic import ValidationError

from reconciler.load import load
from reconciler.yamlnodes import NodeConverter, compose_documents, dump_documents, dump_models
from specs import KINDS
from specs.schema import kind_schema

_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)


# --- spec models through files and the loader ---


def _constrained(schema: dict[str, Any], spec: str, required: list[str],
                 properties: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` whose $defs[spec] requires `required`, with `properties` narrowed."""
    variant = copy.deepcopy(schema)
    definition = variant["$defs"][spec]
    assert set(properties) <= set(definition["properties"])
    definition["properties"].update(properties)
    definition["required"] = sorted({*definition.get("required", []), *required})
    return variant


def _schemas_for_generation(kind: str) -> list[dict[str, Any]]:
    """The kind's JSON Schema, split where cross-field rules would reject most documents.

    The schema cannot say "certificate and key together, else a subject" (CertificateAuthority)
    or "certificatePolicy xor default: true" (DnPolicy); unconstrained, most generated documents
    of those kinds break the rule. Each variant is a narrowing of the real schema, and together
    they still cover every form the model accepts.
    """
    schema = kind_schema(kind)
    if kind == "CertificateAuthority":
        spec = "CertificateAuthoritySpec"
        return [
            _constrained(schema, spec, ["subject"],
                         {"subject": {"type": "string", "minLength": 1},
                          "certificate": {"type": "null"}, "key": {"type": "null"}}),
            _constrained(schema, spec, ["certificate", "key"],
                         {"certificate": {"$ref": "#/$defs/CertificateRef"},
                          "key": {"$ref": "#/$defs/SecretRef"}}),
        ]
    if kind == "DnPolicy":
        spec = "DnPolicySpec"
        return [
            _constrained(schema, spec, ["certificatePolicy"],
                         {"certificatePolicy": {"type": "string"}, "default": {"const": False}}),
            _constrained(schema, spec, ["default"],
                         {"default": {"const": True}, "certificatePolicy": {"type": "null"}}),
        ]
    if kind == "ExternalSystem":
        # One schema per listenerType: each is one branch of the spec's oneOf, and generating
        # from a oneOf means validating every draw against all other branches (slow).
        variants = []
        for branch in schema["properties"]["spec"]["oneOf"]:
            variant = copy.deepcopy(schema)
            variant["properties"]["spec"] = branch
            variants.append(variant)
        return variants
    return [schema]


@functools.cache
def _documents(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    variants = _schemas_for_generation(kind)
    for variant in variants:
        jsonschema.Draft202012Validator.check_schema(variant)
    return st.one_of([from_schema(variant) for variant in variants])


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(kind_schema(kind))


@pytest.mark.parametrize("kind", list(KINDS))
@_SETTINGS
@given(data=st.data())
def test_every_kind_round_trips_through_a_file(kind: str, data: st.DataObject) -> None:
    document = data.draw(_documents(kind), label="document")
    # The variants only narrow the real schema: what they generate, the real one accepts.
    assert _validator(kind).is_valid(document)
    try:
        model = KINDS[kind].model_validate(document)
    except ValidationError:
        reject()  # the schema cannot express every cross-field rule of the models

    text = dump_models([model])
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "spec.yaml").write_text(text, encoding="utf-8")
        result = load(folder)

    assert result.problems == [], text
    assert len(result.documents) == 1, text
    (loaded,) = result.documents
    assert loaded.kind == kind
    assert type(loaded.model) is KINDS[kind]
    assert loaded.model == model, text
    dumped = loaded.model.model_dump(mode="json", by_alias=True)
    assert dumped == model.model_dump(mode="json", by_alias=True), text
    # What mimctl writes passes the schema editors check it with, defaults included or not.
    assert _validator(kind).is_valid(dumped), dumped
    assert _validator(kind).is_valid(
        model.model_dump(mode="json", by_alias=True, exclude_defaults=True)), text


def test_dump_models_leaves_defaults_out_and_keeps_order() -> None:
    role = KINDS["Role"].model_validate(
        {"apiVersion": "mim/v1", "kind": "Role", "metadata": {"name": "Helpdesk"},
         "spec": {"scope": "All"}})
    settings_doc = KINDS["Settings"].model_validate(
        {"apiVersion": "mim/v1", "kind": "Settings", "metadata": {"name": "system"}})
    text = dump_models([role, settings_doc])
    data = [NodeConverter().convert(node) for node in compose_documents(text)]
    assert data == [
        {"apiVersion": "mim/v1", "kind": "Role", "metadata": {"name": "Helpdesk"},
         "spec": {"scope": "All"}},
        {"apiVersion": "mim/v1", "kind": "Settings", "metadata": {"name": "system"}},
    ]


def test_secret_forms_round_trip_through_a_file() -> None:
    document = {
        "apiVersion": "mim/v1", "kind": "ExternalSystem", "metadata": {"name": "Gateways"},
        "spec": {"listenerType": "WorkspaceOne", "baseUrl": "https://as1.awmdm.com",
                 "keyValue": "enc:v1:QUJD:ZGVm=", "authentication": "UserPassword",
                 "username": "svc", "password": {"file": "/run/secrets/ws1"}},
    }
    model = KINDS["ExternalSystem"].model_validate(document)
    text = dump_models([model])
    assert "enc:v1:QUJD:ZGVm=" in text
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "systems.yaml").write_text(text, encoding="utf-8")
        result = load(folder)
    assert result.problems == []
    (loaded,) = result.documents
    assert loaded.model == model
    assert loaded.model.spec.key_value.sealed == "enc:v1:QUJD:ZGVm="
    assert loaded.model.spec.password.file == "/run/secrets/ws1"


# --- YAML scalars through dump_documents and the converter ---


def _read_back(text: str) -> list[Any]:
    converter = NodeConverter()
    values = [converter.convert(node) for node in compose_documents(text)]
    assert converter.problems == [], text
    return values


def _same(left: Any, right: Any) -> bool:
    """Equality that tells bool from int from float, -0.0 from 0.0, and lets nan equal nan."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        if math.isnan(left):
            return math.isnan(right)
        return left == right and math.copysign(1.0, left) == math.copysign(1.0, right)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    return left == right


def test_same_is_strict() -> None:
    assert _same({"a": [1, 2.0, None]}, {"a": [1, 2.0, None]})
    assert not _same(True, 1)
    assert not _same(1, 1.0)
    assert not _same(0.0, -0.0)
    assert not _same("1", 1)
    assert _same(math.nan, math.nan)
    assert not _same({"a": 1, "b": 2}, {"b": 2, "a": 1})


TRICKY_STRINGS = [
    "yes", "no", "on", "off", "NO", "Yes", "y", "n", "True", "TRUE", "true", "false", "False",
    "0o17", "0x1F", "0b101", "012", "0", "-1", "+1", "1_000", "1e3", "1E3", "-1.5", ".5", "1.",
    "+.inf", ".inf", "-.inf", ".Inf", ".nan", ".NaN", "NaN", "inf",
    "null", "Null", "NULL", "~", "", " ", "2026-01-01", "2026-01-01T10:00:00Z", "12:30:00",
    " leading space", "trailing space ", "multi\nline\n", "multi\nline", "\nleading newline",
    "x\n\n", "\n", "tab\tinside", "\ttab first", "crlf\r\nline\r\n", "cr\ronly",
    "unicode: ünïcødé ✓ 日本語 😀", "\u2028line separator", "para\u2029graph", "next\x85line",
    "nel\x85\nand newline\n", "\ufeffbom", "nul\x00byte", "bell\x07", "del\x7f",
    "key: value", "a:b", "- dash", "-", "--", "---", "...", "? question", "#hash", "a #b",
    "@at", "`tick", "*star", "&amp", "!bang", "!!str", "%pct", "|pipe", ">gt", "'quote",
    '"double', "[flow]", "{flow: map}", ",comma", "<<", "=", "'", '"', "\\backslash",
    "very long " * 30,
]


@pytest.mark.parametrize("value", TRICKY_STRINGS, ids=repr)
def test_tricky_strings_stay_strings(value: str) -> None:
    document = {"value": value, "list": [value], value: "as a key", "nested": {"k": [{"v": value}]}}
    text = dump_documents([value, document])
    back = _read_back(text)
    assert _same(back, [value, document]), text


def test_tricky_strings_in_spec_fields_round_trip_through_a_file() -> None:
    document = {
        "apiVersion": "mim/v1", "kind": "Person",
        "metadata": {"name": "NO", "labels": {value: value for value in TRICKY_STRINGS},
                     "annotations": {"mim/protect": "true", "yes": "on"}},
        "spec": {"fullName": "0x1F", "employeeId": "012", "group": "2026-01-01",
                 "userPrincipalName": "null", "firstName": "", "lastName": "~",
                 "attributes": {f"A{index}": value for index, value in enumerate(TRICKY_STRINGS)}},
    }
    model = KINDS["Person"].model_validate(document)
    text = dump_models([model])
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "people.yaml").write_text(text, encoding="utf-8")
        result = load(folder)
    assert result.problems == [], text
    (loaded,) = result.documents
    assert loaded.model == model
    assert loaded.name == "NO"
    assert loaded.model.spec.full_name == "0x1F"
    assert loaded.model.spec.first_name == ""
    assert loaded.model.spec.last_name == "~"
    assert loaded.model.metadata.labels == {value: value for value in TRICKY_STRINGS}


NUMBERS_AND_CONSTANTS = [
    0, 1, -1, 17, 2**64, -(2**70), 0.0, -0.0, 1.5, -2.25, 1e3, 1e-7, 1e300, 5e-324,
    math.inf, -math.inf, True, False, None, [], {}, [[]], [{}], {"a": {}},
]


@pytest.mark.parametrize("value", NUMBERS_AND_CONSTANTS, ids=repr)
def test_numbers_and_constants_keep_their_type(value: Any) -> None:
    text = dump_documents([value, {"value": value}, [value]])
    back = _read_back(text)
    assert _same(back, [value, {"value": value}, [value]]), text


def test_nan_reads_back_as_nan() -> None:
    text = dump_documents([math.nan, {"value": math.nan, "list": [math.nan]}])
    top, mapping = _read_back(text)
    assert isinstance(top, float) and math.isnan(top)
    assert isinstance(mapping["value"], float) and math.isnan(mapping["value"])
    assert math.isnan(mapping["list"][0])


def test_several_documents_keep_their_order() -> None:
    documents = [{"a": 1}, "yes", None, [1, "2", 3.0], {"b": {"c": "0x10"}}]
    text = dump_documents(documents)
    assert text.startswith("---")
    assert _same(_read_back(text), documents)


# Characters that matter to YAML (indicators, quotes, breaks, digits of numbers, BOM, NUL), mixed
# into arbitrary text so that generated strings often look like something else.
_YAML_SIGNIFICANT = (":#-?&*!|>'\"%@`{}[],<=~.+_ \t\n\r\x00\x85\u2028\u2029\ufeff"
                     "0123456789eEinfoxyYnN")
_texts = (
    st.text(st.characters(codec="utf-8") | st.sampled_from(_YAML_SIGNIFICANT))
    | st.sampled_from(TRICKY_STRINGS)
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _texts,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_texts, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(_json_values, min_size=1, max_size=3))
def test_json_like_values_round_trip(documents: list[Any]) -> None:
    text = dump_documents(documents)
    assert _same(_read_back(text), documents), text
