"""Person: someone who receives, requests or manages mobile IDs, and the fields DN templates use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, field_validator

from specs.base import DisplayNameMetadata, Document, Reference, SpecModel, UniqueList, refs

# The columns of the v_people_user_accounts view a DN template may substitute
# ([[People.Field]]), mapped to the spec field each comes from. Custom attributes
# (`attributes`) are substitutable under their own names.
DN_FIELDS: dict[str, str] = {
    "LogonName": "metadata.name",
    "FullName": "full_name",
    "FirstName": "first_name",
    "LastName": "last_name",
    "Email": "email",
    "Cell": "cell",
    "UserPrincipalName": "user_principal_name",
    "EmployeeId": "employee_id",
    "GroupName": "group",
}
ATTRIBUTE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
_ATTRIBUTE_RE = re.compile(ATTRIBUTE_NAME_PATTERN)
_FOLDED_DN_FIELDS = {name.lower() for name in DN_FIELDS}


class PersonSpec(SpecModel):
    """A person's record."""

    full_name: str = Field(min_length=1, description="Name shown on badges and in the DN.")
    first_name: str | None = Field(None, description="Given name.")
    last_name: str | None = Field(None, description="Family name.")
    email: str | None = Field(
        None, pattern=r"^[^@\s]+@[^@\s]+$", description="E-mail address for notifications.")
    cell: str | None = Field(
        None, pattern=r"^\+?[0-9][0-9 ()-]{3,30}$",
        description="Cell (mobile) number for SMS, e.g. 00447700900123.")
    user_principal_name: str | None = Field(None, description="UPN, e.g. alice@corp.example.")
    employee_id: str | None = Field(None, description="Employee number.")
    group: str | None = Field(None, description="Group (department) the person belongs to.")
    enabled: bool = Field(True, description="A disabled person can neither request nor collect.")
    roles: Annotated[list[str], UniqueList] = Field(default_factory=list, description="Roles the person holds.")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Custom attributes (e.g. Xu55) that DN templates may substitute.",
        json_schema_extra={"propertyNames": {"pattern": ATTRIBUTE_NAME_PATTERN}})

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ATTRIBUTE_RE.fullmatch(name):
                raise ValueError(f"attribute name {name!r} must match {ATTRIBUTE_NAME_PATTERN}")
            if name.lower() in _FOLDED_DN_FIELDS:
                raise ValueError(f"attribute {name!r} shadows the built-in field of that name")
        return value


class Person(Document):
    """A person, named by logon name."""

    kind: Literal["Person"]
    metadata: DisplayNameMetadata
    spec: PersonSpec

    def references(self) -> Iterator[Reference]:
        return refs("Role", self.spec.roles, "spec", "roles")

    def dn_fields(self) -> dict[str, str]:
        """The values a DN template may substitute for this person (absent fields omitted)."""
        values: dict[str, str] = {"LogonName": self.metadata.name}
        for column, field in DN_FIELDS.items():
            if field.startswith("metadata."):
                continue
            value = getattr(self.spec, field)
            if value is not None:
                values[column] = value
        values.update(self.spec.attributes)
        return values
