"""Certificate subjects from DN policies: the person's fields in the policy's template.

The subject of every certificate the service issues comes from here, never from the CSR. The
DN policy naming the certificate policy's friendly name wins; else the DnPolicy marked
`default: true`; else Settings' `dnProcessor.default`. `[[People.Field]]` substitutes the
person's field RFC 4514-escaped, `[[[People.Field]]]` substitutes it raw (specs/dn_template.py);
validation has already refused templates naming fields no person can have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.engine import Connection

from reconciler.db.models import KIND_TABLES
from reconciler.errors import MimError
from specs import API_VERSION
from specs.dn_template import DnTemplateError, subject_name
from specs.person import Person


class DnError(MimError):
    """No DN template applies, or the person's fields do not make a valid subject."""


@dataclass(frozen=True, slots=True)
class DnPolicies:
    """The DN templates as applied: by certificate policy friendly name, and the default."""

    by_policy: dict[str, str]
    default: str | None

    @classmethod
    def load(cls, connection: Connection, settings: dict[str, Any] | None = None) -> DnPolicies:
        """The DN policies as applied; `settings` (the Settings spec, if the caller has it)
        gives the default when no DnPolicy is marked default."""
        table = KIND_TABLES["DnPolicy"].table
        by_policy: dict[str, str] = {}
        default = None
        for row in connection.execute(select(table.c.document)):
            spec = row.document["spec"]
            if spec.get("default"):
                default = spec["dn"]
            elif spec.get("certificatePolicy"):
                by_policy[spec["certificatePolicy"]] = spec["dn"]
        if default is None:
            if settings is None:
                table = KIND_TABLES["Settings"].table
                settings = (connection.execute(select(table.c.document)).scalar() or {}).get(
                    "spec", {})
            default = settings.get("dnProcessor", {}).get("default")
        return cls(by_policy, default)

    def template(self, friendly_name: str) -> str:
        template = self.by_policy.get(friendly_name, self.default)
        if template is None:
            raise DnError(f"no DnPolicy names certificate policy {friendly_name!r} and there "
                          "is no default DN policy")
        return template

    def subject(self, friendly_name: str, values: dict[str, str]) -> x509.Name:
        template = self.template(friendly_name)
        try:
            return subject_name(template, values)
        except DnTemplateError as error:
            raise DnError(f"the DN policy for {friendly_name!r} ({template}) gives no valid "
                          f"subject for this person: {error}") from None


def load_person(connection: Connection, name: str) -> Person | None:
    """The Person as applied, its promoted columns (the truth) laid over the document."""
    kind = KIND_TABLES["Person"]
    row = connection.execute(select(kind.table).where(kind.table.c.name == name)).first()
    if row is None:
        return None
    document: dict[str, Any] = row.document
    spec = dict(document["spec"])
    for column, path in kind.promoted.items():
        value = getattr(row, column)
        if value is None:
            spec.pop(path[-1], None)
        else:
            spec[path[-1]] = value
    return Person.model_validate({"apiVersion": API_VERSION, "kind": "Person",
                                  "metadata": {"name": name, **document["metadata"]},
                                  "spec": spec})
