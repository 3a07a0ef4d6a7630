"""Role: the workflows a group of people may run, how they log on, and over whom."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from specs.base import DisplayNameMetadata, Document, SpecModel, UniqueList

Workflow = Literal[
    "Cancel Credential",
    "Enable / Disable ID",
    "Request ID",
    "Request My ID",
    "Request Replacement ID",
    "Request Update",
    "Request Device Renewal",
    "Unlock Credential",
    "Collect My Updates",
    "Issue Device",
    "Validate Request",
    "Add Device",
]
WORKFLOWS: tuple[str, ...] = Workflow.__args__  # type: ignore[attr-defined]

LogonMechanism = Literal[
    "Password",
    "Smart Card",
    "Security Phrases",
    "Integrated Windows Logon",
    "Authentication Code",
    "FIDO",
]

Scope = Literal["Self", "Department", "Division", "All"]


class RoleSpec(SpecModel):
    """What a role grants."""

    description: str | None = Field(None, description="What the role is for.")
    workflows: Annotated[list[Workflow], UniqueList] = Field(
        default_factory=list,
        description="Workflows the role may run. Receivers of mobile IDs need Collect My "
        "Updates and Issue Device.")
    logon_mechanisms: Annotated[list[LogonMechanism], UniqueList] = Field(
        default_factory=lambda: ["Password"],
        description="How holders of the role log on; mobile collection needs Password.")
    scope: Scope = Field(
        "Self", description="Whose records holders may act on: Self, Department, Division, All.")


class Role(Document):
    """A role, named as in the product (e.g. `PasswordUser`)."""

    kind: Literal["Role"]
    metadata: DisplayNameMetadata
    spec: RoleSpec = Field(default_factory=RoleSpec)
