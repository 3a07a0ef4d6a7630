"""JSON Schemas of the spec documents, for editors (yaml-language-server) and other tools."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from specs import KINDS

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def kind_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind's documents."""
    schema = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DIALECT, **schema, "title": f"mimctl {kind}"}


def all_kinds_schema() -> dict[str, Any]:
    """One schema accepting a document of any kind (for a whole repository)."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in KINDS.values()], by_alias=True)
    refs = [{"$ref": f"#/$defs/{model.__name__}"} for model in KINDS.values()]
    return {"$schema": DIALECT, "title": "mimctl spec document", "oneOf": refs,
            "$defs": definitions.get("$defs", {})}
