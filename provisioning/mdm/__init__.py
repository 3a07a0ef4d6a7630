"""MDM connectors: Intune, Workspace ONE and BlackBerry UEM behind one interface.

`open_connector` builds the connector of an ExternalSystem stored in the database, with its
secrets decrypted under the master key; `decide` judges a device against a credential
profile's MDM restrictions. The collection flow answers a refusal with the manual's REST007
and audits the identifier looked up, the system and the condition that failed.
"""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from provisioning.mdm import blackberry, intune, workspace_one  # noqa: F401  (registers them)
from provisioning.mdm.base import (
    CONNECTORS,
    Connector,
    MdmAuthError,
    MdmError,
    MdmProtocolError,
    MdmUnavailable,
    Sleep,
    Step,
)
from provisioning.mdm.restrictions import MdmDecision, check
from provisioning.systems import UnknownSystem, load_system, system_secrets
from reconciler.db import vault
from reconciler.db.models import KIND_TABLES
from specs.credential_profile import MdmRestrictions
from specs.external_system import MDM_LISTENER_TYPES


class NotAnMdm(MdmError):
    """The ExternalSystem named is not an MDM."""


def open_connector(connection: Connection, key: vault.MasterKey, name: str, *,
                   transport: httpx.BaseTransport | None = None,
                   sleep: Sleep = time.sleep) -> Connector:
    """The connector of the MDM ExternalSystem `name`, with its secrets decrypted."""
    system = load_system(connection, name)
    listener = system.spec.listener_type
    if listener not in MDM_LISTENER_TYPES:
        raise NotAnMdm(name, f"is a {listener} system, not an MDM "
                             f"({', '.join(MDM_LISTENER_TYPES)})")
    return CONNECTORS[listener](name, system.spec, system_secrets(connection, key, name),
                                transport=transport, sleep=sleep)


def only_mdm(connection: Connection) -> str:
    """The one enabled MDM system, which profiles naming none ask (rule MIM503 allows that)."""
    table = KIND_TABLES["ExternalSystem"].table
    names = connection.execute(select(table.c.name).where(
        table.c.listener_type.in_(MDM_LISTENER_TYPES), table.c.enabled.is_(True))).scalars().all()
    if len(names) != 1:
        raise UnknownSystem(f"the profile names no MDM system and there are {len(names)} "
                            "enabled ones; name one in mdmRestrictions.externalSystem")
    return str(names[0])


def decide(engine: Engine, key: vault.MasterKey, restrictions: MdmRestrictions,
           mdm_device_id: str | None, *, transport: httpx.BaseTransport | None = None,
           sleep: Sleep = time.sleep) -> MdmDecision:
    """The MDM restrictions' verdict on a device, asking the MDM when they need to.

    The system is read in a short transaction; no database connection is held while the MDM
    answers. A refusal is a decision (`allowed` false, REST007, what failed), for the caller
    to audit and answer; MdmUnavailable propagates: an MDM that cannot answer is no verdict.
    """
    if restrictions.status == "Unrestricted":
        return check(restrictions, mdm_device_id, None)
    with engine.connect() as connection:
        if restrictions.external_system is None:
            restrictions = restrictions.model_copy(
                update={"external_system": only_mdm(connection)})
        connector = open_connector(connection, key, str(restrictions.external_system),
                                   transport=transport, sleep=sleep)
    with connector:
        return check(restrictions, mdm_device_id, connector.lookup)


__all__ = [
    "CONNECTORS",
    "Connector",
    "MdmAuthError",
    "MdmDecision",
    "MdmError",
    "MdmProtocolError",
    "MdmUnavailable",
    "NotAnMdm",
    "Step",
    "UnknownSystem",
    "decide",
    "load_system",
    "open_connector",
]
