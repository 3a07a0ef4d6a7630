"""MDM connectors: Intune, Workspace ONE and BlackBerry UEM behind one interface.

`open_connector` builds the connector of an ExternalSystem stored in the database, with its
secrets decrypted under the master key; `enforce` decides a collection against a credential
profile's MDM restrictions and audits a rejection (the manual's REST007) with the identifier
it looked up, the system and the condition that failed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy.engine import Connection

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
from provisioning.mdm.restrictions import REJECTION_CODE, MdmDecision, check
from provisioning.systems import UnknownSystem, load_system, system_secrets
from reconciler.db import vault
from reconciler.db.audit import AuditEvent, append
from specs.credential_profile import MdmRestrictions
from specs.external_system import MDM_LISTENER_TYPES


class NotAnMdm(MdmError):
    """The ExternalSystem named is not an MDM."""


class MdmRejected(Exception):
    """The MDM check refused the device: answer REST007; the decision says why."""

    code = REJECTION_CODE

    def __init__(self, decision: MdmDecision) -> None:
        super().__init__(f"{REJECTION_CODE}: {decision.condition}")
        self.decision = decision


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


def enforce(connection: Connection, key: vault.MasterKey, restrictions: MdmRestrictions,
            mdm_device_id: str | None, *, actor: str, subject: dict[str, Any],
            transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep
            ) -> MdmDecision:
    """Check a collection against MDM restrictions; a rejection is audited, then raised.

    `subject` (request, person, profile, ...) goes into the audit event beside the decision.
    MdmUnavailable propagates: an MDM that cannot answer is not a rejection.
    """
    if restrictions.status == "Unrestricted" or restrictions.external_system is None:
        return check(restrictions, mdm_device_id, None)
    with open_connector(connection, key, restrictions.external_system, transport=transport,
                        sleep=sleep) as connector:
        decision = check(restrictions, mdm_device_id, connector.lookup)
    if not decision.allowed:
        append(connection, [AuditEvent(actor, "mdm-reject", "ExternalSystem",
                                       restrictions.external_system,
                                       {**subject, **decision.audit_details()})])
        raise MdmRejected(decision)
    return decision


__all__ = [
    "CONNECTORS",
    "Connector",
    "MdmAuthError",
    "MdmDecision",
    "MdmError",
    "MdmProtocolError",
    "MdmRejected",
    "MdmUnavailable",
    "NotAnMdm",
    "Step",
    "UnknownSystem",
    "enforce",
    "load_system",
    "open_connector",
]
