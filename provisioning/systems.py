"""ExternalSystems as the service uses them: the stored spec, and its secrets in clear."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from reconciler.db import vault
from reconciler.db.models import KIND_TABLES
from specs import API_VERSION
from specs.external_system import ExternalSystem


class UnknownSystem(LookupError):
    """No ExternalSystem of that name is in the database."""


def load_system(connection: Connection, name: str) -> ExternalSystem:
    """The ExternalSystem `name` as stored (its secrets as fingerprints only)."""
    table = KIND_TABLES["ExternalSystem"].table
    row = connection.execute(select(table.c.document).where(table.c.name == name)).first()
    if row is None:
        raise UnknownSystem(f"{name}: no ExternalSystem of that name is in the database; "
                            "apply its spec first")
    document: dict[str, Any] = row.document
    return ExternalSystem.model_validate({"apiVersion": API_VERSION, "kind": "ExternalSystem",
                                          "metadata": {"name": name, **document["metadata"]},
                                          "spec": document["spec"]})


def system_secrets(connection: Connection, key: vault.MasterKey, name: str) -> dict[str, bytes]:
    """The secrets of an ExternalSystem by path without `spec.` ("password", "clientSecret")."""
    return {path.removeprefix("spec."): value
            for path, value in vault.read(connection, key, "ExternalSystem", name).items()}
