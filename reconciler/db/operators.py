"""Who may act on whose device: an operator's roles, their workflows and their scope.

An operator is an enabled Person. An operation needs a workflow (cancel: Cancel Credential;
disable and enable: Enable / Disable ID; an unlock code: Unlock Credential) granted by one of
the operator's roles whose scope covers the device's owner — Self: the operator's own devices;
Department and Division: people of the operator's group; All: everyone. An unlock code also
needs that role to be in the device's profile's canUnlock. A refusal says what was missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from reconciler.db.models import KIND_TABLES
from reconciler.errors import MimError
from specs.role import RoleSpec

WORKFLOWS = {"cancel": "Cancel Credential", "disable": "Enable / Disable ID",
             "enable": "Enable / Disable ID", "unlock-code": "Unlock Credential",
             "replace": "Request Replacement ID", "renew": "Request Device Renewal",
             "update": "Request Update"}


class NotPermitted(MimError):
    """The operator may not do this to this device; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Operator:
    """A person acting on devices, with the roles they hold."""

    name: str
    group: str | None
    roles: dict[str, RoleSpec]


def load_operator(connection: Connection, name: str) -> Operator:
    people = KIND_TABLES["Person"].table
    person = connection.execute(select(people).where(people.c.name == name)).first()
    if person is None or not person.enabled:
        raise NotPermitted(f"{name!r} is not an enabled person")
    held = person.document["spec"].get("roles", [])
    roles = KIND_TABLES["Role"].table
    specs = {row.name: RoleSpec.model_validate(row.document.get("spec") or {})
             for row in connection.execute(select(roles.c.name, roles.c.document)
                                           .where(roles.c.name.in_(held)))}
    return Operator(name, person.group_name, specs)


def _group(connection: Connection, person: str) -> str | None:
    people = KIND_TABLES["Person"].table
    return connection.execute(select(people.c.group_name).where(people.c.name == person)).scalar()


def covers(scope: str, operator: Operator, owner: str, owner_group: str | None) -> bool:
    if scope == "All":
        return True
    if scope in ("Department", "Division"):
        return operator.group is not None and operator.group == owner_group
    return owner == operator.name


def visible(connection: Connection, operator: Operator, devices: list[Any]) -> list[Any]:
    """The devices any of the operator's roles reaches, with one query for their owners."""
    people = KIND_TABLES["Person"].table
    owners = sorted({device.person_name for device in devices})
    query = select(people.c.name, people.c.group_name)
    if len(owners) <= 500:  # beyond that, reading every person beats a huge IN list
        query = query.where(people.c.name.in_(owners))
    groups = dict(connection.execute(query).all()) if owners else {}
    return [device for device in devices
            if any(covers(role.scope, operator, device.person_name,
                          groups.get(device.person_name)) for role in operator.roles.values())]


def sees(connection: Connection, operator: Operator, device: Any) -> bool:
    """Whether any of the operator's roles reaches the device's owner."""
    return bool(visible(connection, operator, [device]))


def check(connection: Connection, operator: Operator, operation: str, device: Any) -> str:
    """The role that permits `operation` on `device`, or NotPermitted saying what is missing."""
    workflow = WORKFLOWS[operation]
    granting = {name: role for name, role in operator.roles.items()
                if workflow in role.workflows}
    if not granting:
        raise NotPermitted(f"{operator.name} holds no role with the {workflow} workflow")
    group = _group(connection, device.person_name)
    reaching = {name: role for name, role in granting.items()
                if covers(role.scope, operator, device.person_name, group)}
    if not reaching:
        scopes = ", ".join(sorted({role.scope for role in granting.values()}))
        raise NotPermitted(f"{operator.name}'s {workflow} roles ({', '.join(sorted(granting))}) "
                           f"have scope {scopes}, which does not reach {device.person_name}")
    if operation == "unlock-code":
        profiles = KIND_TABLES["CredentialProfile"].table
        document = connection.execute(select(profiles.c.document).where(
            profiles.c.name == device.profile_name)).scalar()
        allowed = set((document or {}).get("spec", {}).get("roles", {}).get("canUnlock", []))
        reaching = {name: role for name, role in reaching.items() if name in allowed}
        if not reaching:
            raise NotPermitted(f"none of {operator.name}'s roles is in canUnlock of profile "
                               f"{device.profile_name} ({', '.join(sorted(allowed)) or 'none'})")
    return sorted(reaching)[0]


def check_request(connection: Connection, operator: Operator, person: str,
                  profile: str) -> str:
    """The role that lets the operator request a mobile ID of `profile` for `person`.

    Request ID for others, or Request My ID for oneself, in a role whose scope reaches the
    person and which the profile lists in canRequest.
    """
    workflow = "Request My ID" if person == operator.name else "Request ID"
    granting = {name: role for name, role in operator.roles.items()
                if workflow in role.workflows or "Request ID" in role.workflows}
    if not granting:
        raise NotPermitted(f"{operator.name} holds no role with the {workflow} workflow")
    group = _group(connection, person)
    reaching = {name for name, role in granting.items()
                if covers(role.scope, operator, person, group)}
    if not reaching:
        raise NotPermitted(f"the scope of {operator.name}'s request roles does not reach "
                           f"{person}")
    profiles = KIND_TABLES["CredentialProfile"].table
    document = connection.execute(select(profiles.c.document).where(
        profiles.c.name == profile)).scalar()
    allowed = set((document or {}).get("spec", {}).get("roles", {}).get("canRequest", []))
    permitted = sorted(reaching & allowed)
    if not permitted:
        raise NotPermitted(f"none of {operator.name}'s request roles is in canRequest of "
                           f"profile {profile} ({', '.join(sorted(allowed)) or 'none'})")
    return permitted[0]
