"""The live configuration as spec documents: put an existing system under git in minutes.

Every configuration row becomes its document — kinds in dependency order, names sorted,
values the kind's defaults would give left out — so `reconcile --plan` on the result shows no
changes. Secrets never leave the database: each becomes an `{env: NAME}` reference, NAME
derived from where it sits (`MIM_EXTERNALSYSTEM_INTUNE_PRODUCTION_CLIENTSECRET`), for the
operator to fill in (or to seal) before the first plan.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.canonical import to_model
from reconciler.state import State
from specs import API_VERSION, KINDS
from specs.secrets import STORED_KEY

FILES = {
    "Settings": "settings.yaml", "Role": "roles.yaml", "Person": "people.yaml",
    "CertificateAuthority": "authorities.yaml", "CertificatePolicy": "policies.yaml",
    "CardFormat": "card-formats.yaml", "CardLayout": "card-layouts.yaml",
    "DnPolicy": "dn-policies.yaml", "ExternalSystem": "systems.yaml",
    "CredentialProfile": "profiles.yaml", "Device": "devices.yaml",
    "MobileRequest": "requests.yaml",
}


@dataclass(slots=True)
class Export:
    """The exported files ({file name: YAML text}) and the secrets they leave to fill in."""

    files: dict[str, str] = field(default_factory=dict)
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (variable, where)


def env_name(kind: str, name: str, path: str) -> str:
    words = f"MIM_{kind}_{name}_{path.removeprefix('spec.')}"
    return re.sub(r"[^A-Z0-9]+", "_", words.upper()).strip("_")


def _references(value: Any, kind: str, name: str, path: str, found: list[tuple[str, str]]
                ) -> Any:
    """The document with each stored secret replaced by an environment reference."""
    if isinstance(value, dict):
        if set(value) == {STORED_KEY}:
            variable = env_name(kind, name, path)
            found.append((variable, f"{kind}/{name} {path}"))
            return {"env": variable}
        return {key: _references(item, kind, name, f"{path}.{key}", found)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_references(item, kind, name, f"{path}[{index}]", found)
                for index, item in enumerate(value)]
    return value


def export(state: State, advance: Callable[[int], None] | None = None) -> Export:
    """Documents for every configuration object of `state`, one YAML file per kind;
    `advance(1)` is called after each object (the CLI's progress bar)."""
    result = Export()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for (kind, name), stored in sorted(state.objects.items(),
                                       key=lambda item: (list(KINDS).index(item[0][0]),
                                                         item[0][1])):
        document = {"metadata": stored.document["metadata"],
                    "spec": _references(stored.document["spec"], kind, name, "spec",
                                        result.secrets)}
        model = to_model(kind, name, document)
        dumped = model.model_dump(mode="json", by_alias=True, exclude_defaults=True,
                                  include={"metadata", "spec"})
        metadata = {"name": name, **{key: value for key, value in dumped["metadata"].items()
                                     if key != "name" and value}}
        text: dict[str, Any] = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata}
        if dumped.get("spec"):
            text["spec"] = dumped["spec"]
        by_kind.setdefault(kind, []).append(text)
        if advance is not None:
            advance(1)
    for kind, documents in by_kind.items():
        result.files[FILES[kind]] = "---\n".join(_yaml(document) for document in documents)
    return result


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the models' order, multi-line text (PEM) as literal blocks."""


# Text a YAML 1.1 or 1.2 reader could take for a number, a boolean or null: always quoted, so
# `cell: "00447700900123"` stays text whichever parser reads the file.
_LOOKS_TYPED = re.compile(
    r"[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|0[xX][0-9a-fA-F_]+|0o[0-7_]+"
    r"|\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN|[yY]|[nN]|yes|Yes|YES|no|No|NO|true|True|TRUE"
    r"|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|[\d:]+(\.\d*)?|")


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        style: str | None = "|"
    elif _LOOKS_TYPED.fullmatch(value):
        style = '"'
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)
